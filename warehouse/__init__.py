"""The warehouse: Kafka change topics into DuckDB, built into view tables and published."""
