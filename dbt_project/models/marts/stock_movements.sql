with

events as (
    select * from {{ ref('stg_inventory__stock_events') }}
),

final as (
    select
        product_id,
        version,
        event_type,
        quantity_delta,
        reason,
        command_id,
        occurred_at,
        sum(quantity_delta) over (
            partition by product_id order by version rows between unbounded preceding and current row
        ) as balance_after,
    from events
)

select * from final
