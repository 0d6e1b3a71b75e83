{{ config(
    unique_key='order_id',
    pre_hook="{{ touched_table(orders_touched()) }}",
) }}

-- Incremental builds recompute only the orders in `touched_relation()`, a temporary table that the
-- pre-hook fills from macros/marts/orders_touched.sql, and takes their rows out of
-- the mart: a key this query gives no row for (deleted, or gone with a truncate) leaves it.

with

orders as (
    select * from {{ ref('stg_orders__orders') }}
    where not _deleted
    {%- if is_incremental() %}
      and order_id in (select order_id from {{ touched_relation() }})
    {%- endif %}
),

lines as (
    select * from {{ ref('stg_orders__order_lines') }}
    where order_id in (select order_id from orders)
),

customers as (
    select * from {{ ref('stg_customers__customers') }}
    where not _deleted
),

invoices as (
    select * from {{ ref('stg_invoices__invoices') }}
    where not _deleted
      and order_id in (select order_id from orders)
),

order_totals as (
    select
        order_id,
        count(*) filter (where not _deleted) as line_count,
        sum(quantity * unit_price) filter (where not _deleted) as order_total,
        max(_batch_id) as _batch_id,
    from lines
    group by order_id
),

current_invoice as (
    -- An order has at most one invoice that is not void; failing that, its latest voided one.
    select * from invoices
    qualify row_number() over (
        partition by order_id order by (status <> 'void') desc, issued_at desc, invoice_id
    ) = 1
),

final as (
    select
        orders.order_id,
        orders.customer_id,
        customers.customer_name,
        customers.customer_email,
        orders.status,
        orders.currency,
        coalesce(order_totals.line_count, 0) as line_count,
        cast(coalesce(order_totals.order_total, 0) as decimal(18, 2)) as order_total,
        orders.placed_at,
        orders.updated_at,
        current_invoice.invoice_id,
        current_invoice.status as invoice_status,
        current_invoice.amount as invoice_amount,
        current_invoice.currency as invoice_currency,
        current_invoice.due_date as invoice_due_date,
        current_invoice.document_url as invoice_document_url,
        coalesce(current_invoice.status = 'paid', false) as is_paid,
        greatest(orders._batch_id, order_totals._batch_id, customers._batch_id, current_invoice._batch_id)
            as _batch_id,
    from orders
    left join customers using (customer_id)
    left join order_totals using (order_id)
    left join current_invoice using (order_id)
)

select *, {{ built_batch() }} as _built_batch from final
