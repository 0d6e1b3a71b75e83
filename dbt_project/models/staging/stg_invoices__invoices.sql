{{ config(unique_key=['invoice_id'], pre_hook="{{ truncate_hook('invoices', 'invoices') }}") }}

with

source as (
    select * from {{ current_state('invoices', 'invoices', keys=['id']) }}
),

renamed as (
    select
        id as invoice_id,
        order_id,
        amount,
        currency,
        due_date,
        document_url,
        status,
        version,
        issued_at,
        paid_at,
        voided_at,
        updated_at,
        _deleted,
        _lsn,
        _commit_ts,
        _batch_id,
    from source
)

select * from renamed
