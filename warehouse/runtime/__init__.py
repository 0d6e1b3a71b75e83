"""The runtime: the stages composed in one process. `mirador build` builds and publishes once;
`mirador run` keeps a loader thread landing while it builds and publishes in a loop, all in one DuckDB
instance of the working file (`session`) that dbt joins through its plugin (`dbt_lock`)."""
