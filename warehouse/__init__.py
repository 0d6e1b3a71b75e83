"""The warehouse: Kafka change topics into DuckDB, built into view tables and published.

By stage, left to right: `ingest` (consume, decode, land: `mirador load`), `build` (dbt over what
landed, and the replay of its recorded SQL), `publish` (snapshots for readers), `verify` (against
the sources), and `runtime`, which composes them in one process (`mirador run`). Shared by every
stage: the working file's `configuration`, its `lock`, the `ledger` (the `loader` schema) and the
`exceptions`; `cli` holds the commands.
"""
