{{ config(
    unique_key='product_id',
) }}

with

events as (
    select * from {{ ref('stg_inventory__stock_events') }}
    {%- if is_incremental() %}
    -- The whole stream of each product with new events, so its running balance is recomputed.
    where product_id in (
        select product_id from {{ ref('stg_inventory__stock_events') }} where _batch_id > {{ mart_watermark() }}
    )
    {%- endif %}
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
        _batch_id,
    from events
)

select *, {{ built_batch() }} as _built_batch from final
