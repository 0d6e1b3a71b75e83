{{ config(unique_key=['order_id', 'line_no'], pre_hook="{{ truncate_hook('orders', 'order_lines') }}") }}

with

source as (
    select * from {{ current_state('orders', 'order_lines', keys=['order_id', 'line_no']) }}
),

renamed as (
    select
        order_id,
        line_no,
        product_id,
        quantity,
        unit_price,
        _deleted,
        _lsn,
        _commit_ts,
        _batch_id,
    from source
)

select * from renamed
