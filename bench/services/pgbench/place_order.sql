-- Place an order with 3 lines straight into Postgres: the rows and statements the orders service
-- sends for POST /orders with an Idempotency-Key (services/common/tx.py combines them the same way).
\set seed random(1, 9000000000000000000)
with w0 as (
    insert into mirador.idempotency_keys (key, route, request_hash, status, response)
    values ('pgbench-' || :seed::text, 'POST /orders', '\x00', 201, :response::jsonb)
), w1 as (
    insert into orders (id, customer_id, currency, status, last_line_no)
    values (md5(:seed::text)::uuid, md5('customer' || :seed::text)::uuid, 'EUR', 'placed', 3)
), w2 as (
    insert into order_lines (order_id, line_no, product_id, quantity, unit_price)
    select md5(:seed::text)::uuid, line_no, product_id, quantity, unit_price
    from rows from (jsonb_to_recordset(:lines::jsonb) as (product_id uuid, quantity int, unit_price numeric))
         with ordinality as line (product_id, quantity, unit_price, line_no)
)
select pg_current_xact_id()::text::bigint;
select pg_current_wal_lsn()::text;
