{{ config(unique_key=['order_id'], pre_hook="{{ truncate_hook('orders', 'orders') }}") }}

with

source as (
    select * from {{ current_state('orders', 'orders', keys=['id']) }}
),

renamed as (
    select
        id as order_id,
        customer_id,
        currency,
        status,
        cancel_reason,
        version,
        placed_at,
        paid_at,
        shipped_at,
        cancelled_at,
        updated_at,
        _deleted,
        _lsn,
        _commit_ts,
        _batch_id,
    from source
)

select * from renamed
