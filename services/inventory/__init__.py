"""The inventory service: the product catalogue (CRUD) and stock (event-sourced)."""
