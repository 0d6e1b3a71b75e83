{#
    Customers whose figures may have changed since the newest batch customer_summary holds: their own
    row, or one of their orders as the orders view table now shows it (its lines and invoices included),
    or an order of theirs was deleted; all of them after a truncate.
#}
{% macro customers_touched() -%}
select customer_id from {{ ref('stg_customers__customers') }} where _batch_id > {{ mart_watermark() }}
union
select customer_id from {{ ref('orders_with_invoices') }} where _batch_id > {{ mart_watermark() }}
union
select customer_id from {{ ref('stg_orders__orders') }} where _deleted and _batch_id > {{ mart_watermark() }}
union
select customer_id from {{ ref('stg_customers__customers') }}
where {{ truncated_since_watermark([('customers', 'customers'), ('orders', 'orders'),
                                    ('orders', 'order_lines'), ('invoices', 'invoices')]) }}
{%- endmacro %}
