"""Build: the dbt project run in-process over the working file, for what landed since the last build.

`project` parses the dbt project once (its manifest, graph and what gets published); `builder` runs
dbt for the models and data tests what landed affects, and records in the ledger what each build
included; `recordings` keeps the SQL dbt executed and replays it without dbt once two runs agree,
which `determinism` first checks the project allows; `dbt_duckdb` is the one place that reaches into
dbt-duckdb's internals.
"""
