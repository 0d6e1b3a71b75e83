{{ config(unique_key=['invoice_id'], pre_hook="{{ truncate_hook(raw_source('invoices', 'invoices')) }}") }}

{{ current_state(
    raw_source('invoices', 'invoices'),
    keys=['id'],
    columns=['order_id', 'amount', 'currency', 'due_date', 'document_url', 'status', 'version',
             'issued_at', 'paid_at', 'voided_at', 'updated_at'],
    renames={'id': 'invoice_id'},
) }}
