{{ config(unique_key=['product_id'], pre_hook="{{ truncate_hook('inventory', 'products') }}") }}

with

source as (
    select * from {{ current_state('inventory', 'products', keys=['id']) }}
),

renamed as (
    select
        id as product_id,
        sku,
        name as product_name,
        list_price,
        currency,
        retired_at,
        version,
        created_at,
        updated_at,
        _deleted,
        _lsn,
        _commit_ts,
        _batch_id,
    from source
)

select * from renamed
