{{ config(
    unique_key=['product_id', 'version'],
) }}

-- Incremental builds append: a product's new movements carry on from the balance this table
-- holds for its last movement, so a build writes the new events, not whole streams. A product
-- whose new events include one it already holds (a redelivery) has its stream recomputed whole.

with

{% if is_incremental() -%}
new_events as (
    select * from {{ ref('stg_inventory__stock_events') }} where _batch_id > {{ mart_watermark() }}
),

held as (
    -- Per product with new events, the last movement this table holds and the balance after it.
    select product_id, max(version) as version, arg_max(balance_after, version) as balance_after
    from {{ this }}
    where product_id in (select product_id from new_events)
    group by product_id
),

continued as (
    -- Products whose new events all come after the last one held: the balance goes on from there.
    select new_events.product_id, coalesce(any_value(held.balance_after), 0) as opening_balance
    from new_events
    left join held using (product_id)
    group by new_events.product_id
    having min(new_events.version) > coalesce(any_value(held.version), 0)
),

events as (
    select new_events.*, continued.opening_balance
    from new_events
    inner join continued using (product_id)
    union all by name
    select stream.*, 0 as opening_balance
    from {{ ref('stg_inventory__stock_events') }} as stream
    where stream.product_id in (select product_id from new_events)
      and stream.product_id not in (select product_id from continued)
),

{%- else %}
events as (
    select *, 0 as opening_balance from {{ ref('stg_inventory__stock_events') }}
),

{%- endif %}

final as (
    select
        product_id,
        version,
        event_type,
        quantity_delta,
        reason,
        command_id,
        occurred_at,
        opening_balance + sum(quantity_delta) over (
            partition by product_id order by version rows between unbounded preceding and current row
        ) as balance_after,
        _batch_id,
    from events
)

select *, {{ built_batch() }} as _built_batch from final
