{{ config(unique_key=['order_id'], pre_hook="{{ truncate_hook(raw_source('orders', 'orders')) }}") }}

{{ current_state(
    raw_source('orders', 'orders'),
    keys=['id'],
    columns=['customer_id', 'currency', 'status', 'cancel_reason', 'version', 'placed_at', 'paid_at',
             'shipped_at', 'cancelled_at', 'updated_at'],
    renames={'id': 'order_id'},
) }}
