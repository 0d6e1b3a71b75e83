-- Decrease one product's stock straight into Postgres: read the stream, check the rule, append the
-- next version with its idempotency key, read the position. The fold is a sum in SQL rather than in
-- the client, and a lost race is skipped (on conflict do nothing) rather than retried.
\set p random(1, :products)
\set seed random(1, 9000000000000000000)
select coalesce(max(version), 0) + 1 as next_version,
       coalesce(sum(case event_type when 'StockIncreased' then quantity else -quantity end), 0) as on_hand
from stock_events where stream = md5(:run::text || :p::text)::uuid \gset
\if :on_hand >= 1
with w0 as (
    insert into mirador.idempotency_keys (key, route, request_hash, status, response)
    values ('pgbench-' || :seed::text, 'POST /products/stock/decrease', '\x00', 200, :response::jsonb)
), w1 as (
    insert into stock_events (stream, version, event_type, quantity, reason, command_id, schema_version)
    values (md5(:run::text || :p::text)::uuid, :next_version, 'StockDecreased', 1, 'bench', 'pgbench-' || :seed::text, 1)
    on conflict do nothing
)
select pg_current_xact_id()::text::bigint;
select pg_current_wal_lsn()::text;
\endif
