{{ config(
    unique_key='product_id',
    pre_hook="{{ touched_table(products_touched()) }}",
) }}

-- Incremental builds recompute only the keys in `touched_relation()`, a temporary table that the
-- pre-hook fills from macros/marts/products_touched.sql, and takes their rows out of
-- the mart: a key this query gives no row for (deleted, or gone with a truncate) leaves it.

with

products as (
    select * from {{ ref('stg_inventory__products') }}
    where not _deleted
    {%- if is_incremental() %}
      and product_id in (select product_id from {{ touched_relation() }})
    {%- endif %}
),

events as (
    select * from {{ ref('stg_inventory__stock_events') }}
    where product_id in (select product_id from products)
),

folded as (
    -- Current stock is the fold of the stream: increases minus decreases.
    select
        product_id,
        sum(quantity_delta) as current_stock,
        max(occurred_at) as last_movement_at,
        count(*) as event_count,
        max(_batch_id) as _batch_id,
    from events
    group by product_id
),

final as (
    select
        products.product_id,
        products.sku,
        products.product_name,
        products.list_price,
        products.currency,
        products.retired_at is not null as is_retired,
        coalesce(folded.current_stock, 0) as current_stock,
        folded.last_movement_at,
        coalesce(folded.event_count, 0) as event_count,
        greatest(products._batch_id, folded._batch_id) as _batch_id,
    from products
    left join folded using (product_id)
)

select *, {{ built_batch() }} as _built_batch from final
