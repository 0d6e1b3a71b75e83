"""Ingest: Kafka change topics into the raw changelog tables, exactly once (`mirador load`).

consume (partitions at the positions the ledger stores) -> decode (Debezium envelopes, Connect
types) -> frames (Arrow) -> land (one DuckDB transaction: rows, dead letters, positions); `load`
runs them batch after batch; `deadletters` lands the dead letters again after a fix
(`mirador deadletters replay`).
"""
