{{ config(unique_key=['order_id', 'line_no'], pre_hook="{{ truncate_hook(raw_source('orders', 'order_lines')) }}") }}

{{ current_state(
    raw_source('orders', 'order_lines'),
    keys=['order_id', 'line_no'],
    columns=['product_id', 'quantity', 'unit_price'],
) }}
