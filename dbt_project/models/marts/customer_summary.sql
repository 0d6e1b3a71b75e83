{{ config(
    unique_key='customer_id',
    pre_hook="{{ touched_table(customers_touched()) }}",
) }}

-- Incremental builds recompute only the keys in `touched_relation()`, a temporary table that the
-- pre-hook fills from macros/marts/customers_touched.sql, and takes their rows out of
-- the mart: a key this query gives no row for (deleted, or gone with a truncate) leaves it.

with

customers as (
    select * from {{ ref('stg_customers__customers') }}
    where not _deleted
    {%- if is_incremental() %}
      and customer_id in (select customer_id from {{ touched_relation() }})
    {%- endif %}
),

orders as (
    select * from {{ ref('orders_with_invoices') }}
    where customer_id in (select customer_id from customers)
),

invoices as (
    select * from {{ ref('stg_invoices__invoices') }}
    where not _deleted
      and order_id in (select order_id from orders)
),

order_figures as (
    select
        customer_id,
        count(*) as orders_count,
        -- Lifetime value counts what the customer paid for: orders that are paid or shipped.
        sum(case when status in ('paid', 'shipped') then order_total else 0 end) as lifetime_value,
        max(placed_at) as last_order_at,
        max(_batch_id) as _batch_id,
    from orders
    group by customer_id
),

invoice_figures as (
    select
        orders.customer_id,
        sum(case when invoices.status = 'issued' then invoices.amount else 0 end) as open_invoice_amount,
        sum(case when invoices.status = 'paid' then invoices.amount else 0 end) as paid_invoice_amount,
    from invoices
    inner join orders using (order_id)
    group by orders.customer_id
),

final as (
    select
        customers.customer_id,
        customers.customer_name,
        customers.customer_email,
        customers.country,
        coalesce(order_figures.orders_count, 0) as orders_count,
        cast(coalesce(order_figures.lifetime_value, 0) as decimal(18, 2)) as lifetime_value,
        cast(coalesce(invoice_figures.open_invoice_amount, 0) as decimal(18, 2)) as open_invoice_amount,
        cast(coalesce(invoice_figures.paid_invoice_amount, 0) as decimal(18, 2)) as paid_invoice_amount,
        order_figures.last_order_at,
        greatest(customers._batch_id, order_figures._batch_id) as _batch_id,
    from customers
    left join order_figures using (customer_id)
    left join invoice_figures using (customer_id)
)

select *, {{ built_batch() }} as _built_batch from final
