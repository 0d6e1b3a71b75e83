{#
    Products whose row changed or whose stream has new events since the newest batch product_stock
    holds.
#}
{% macro products_touched() -%}
select product_id from {{ ref('stg_inventory__products') }} where _batch_id > {{ mart_watermark() }}
union
select product_id from {{ ref('stg_inventory__stock_events') }} where _batch_id > {{ mart_watermark() }}
{%- endmacro %}
