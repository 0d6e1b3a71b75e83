{#
    Orders whose figures may have changed since the newest batch orders_with_invoices holds: their own
    row, a line, an invoice or their customer changed.
#}
{% macro orders_touched() -%}
select order_id from {{ ref('stg_orders__orders') }} where _batch_id > {{ mart_watermark() }}
union
select order_id from {{ ref('stg_orders__order_lines') }} where _batch_id > {{ mart_watermark() }}
union
select order_id from {{ ref('stg_invoices__invoices') }} where _batch_id > {{ mart_watermark() }}
union
select orders.order_id
from {{ ref('stg_orders__orders') }} as orders
inner join {{ ref('stg_customers__customers') }} as customers using (customer_id)
where customers._batch_id > {{ mart_watermark() }}
{%- endmacro %}
