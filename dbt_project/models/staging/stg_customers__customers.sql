{{ config(unique_key=['customer_id'], pre_hook="{{ truncate_hook(raw_source('customers', 'customers')) }}") }}

{{ current_state(
    raw_source('customers', 'customers'),
    keys=['id'],
    columns=['email', 'name', 'country', 'version', 'created_at', 'updated_at'],
    renames={'id': 'customer_id', 'name': 'customer_name', 'email': 'customer_email',
             'created_at': 'registered_at'},
) }}
