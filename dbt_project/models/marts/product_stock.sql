with

products as (
    select * from {{ ref('stg_inventory__products') }}
    where not _deleted
),

events as (
    select * from {{ ref('stg_inventory__stock_events') }}
),

folded as (
    -- Current stock is the fold of the stream: increases minus decreases.
    select
        product_id,
        sum(quantity_delta) as current_stock,
        max(occurred_at) as last_movement_at,
        count(*) as event_count,
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
    from products
    left join folded using (product_id)
)

select * from final
