"""Benchmarks of the write services: HTTP commands next to the same writes straight into Postgres."""
