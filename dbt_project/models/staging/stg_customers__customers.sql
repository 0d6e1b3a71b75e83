{{ config(unique_key=['customer_id'], pre_hook="{{ truncate_hook('customers', 'customers') }}") }}

with

source as (
    select * from {{ current_state('customers', 'customers', keys=['id']) }}
),

renamed as (
    select
        id as customer_id,
        email as customer_email,
        name as customer_name,
        country,
        version,
        created_at as registered_at,
        updated_at,
        _deleted,
        _lsn,
        _commit_ts,
        _batch_id,
    from source
)

select * from renamed
