"""`mirador simulate`: shop-like traffic through the services' HTTP commands."""
