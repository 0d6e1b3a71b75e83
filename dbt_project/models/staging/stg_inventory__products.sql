{{ config(unique_key=['product_id'], pre_hook="{{ truncate_hook(raw_source('inventory', 'products')) }}") }}

{{ current_state(
    raw_source('inventory', 'products'),
    keys=['id'],
    columns=['sku', 'name', 'list_price', 'currency', 'retired_at', 'version', 'created_at', 'updated_at'],
    renames={'id': 'product_id', 'name': 'product_name'},
) }}
