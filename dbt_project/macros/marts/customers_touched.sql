{#
    Customers whose figures may have changed since the newest batch customer_summary holds: their own
    row, one of their orders as the orders view table now shows it (its lines and invoices included),
    an order of theirs that was deleted, or an invoice of theirs (also one deleted, which the orders
    view table no longer shows).
#}
{% macro customers_touched() -%}
select customer_id from {{ ref('stg_customers__customers') }} where _batch_id > {{ mart_watermark() }}
union
select customer_id from {{ ref('orders_with_invoices') }} where _batch_id > {{ mart_watermark() }}
union
select customer_id from {{ ref('stg_orders__orders') }} where _deleted and _batch_id > {{ mart_watermark() }}
union
select orders.customer_id
from {{ ref('stg_invoices__invoices') }} as invoices
inner join {{ ref('stg_orders__orders') }} as orders using (order_id)
where invoices._batch_id > {{ mart_watermark() }}
{%- endmacro %}
