"""The customers service: register, update and delete customers."""
