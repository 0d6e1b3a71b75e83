"""Change data capture: the native Postgres, Kafka and Kafka Connect stack, and the Debezium connectors."""
