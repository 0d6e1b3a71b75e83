with

customers as (
    select * from {{ ref('stg_customers__customers') }}
    where not _deleted
),

orders as (
    select * from {{ ref('orders_with_invoices') }}
),

invoices as (
    select * from {{ ref('stg_invoices__invoices') }}
    where not _deleted
),

order_figures as (
    select
        customer_id,
        count(*) as orders_count,
        -- Lifetime value counts what the customer paid for: orders that are paid or shipped.
        sum(case when status in ('paid', 'shipped') then order_total else 0 end) as lifetime_value,
        max(placed_at) as last_order_at,
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
    from customers
    left join order_figures using (customer_id)
    left join invoice_figures using (customer_id)
)

select * from final
