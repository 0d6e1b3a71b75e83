{{ config(unique_key=['product_id', 'version']) }}

with

source as (
    -- A resnapshot's read has no LSN of its own: it takes its chunk's closing watermark.
    select * replace ({{ position_lsn() }} as _lsn) from {{ raw_source('inventory', 'stock_events') }}
    -- The stream is append-only at the source: only creations (and snapshot reads) are events.
    where _op in ('c', 'r')
    {%- if is_incremental() %}
      and _batch_id > (select coalesce(max(_batch_id), -1) from {{ this }})
    {%- endif %}
),

deduplicated as (
    -- (stream, version) is unique at the source; a second copy is a redelivery. The first copy
    -- stands, also when it was landed in an earlier batch, as a full refresh would have it.
    select * from source
    {%- if is_incremental() %}
    anti join (
        select product_id, version from {{ this }} where product_id in (select stream from source)
    ) as held on held.product_id = source.stream and held.version = source.version
    {%- endif %}
    qualify row_number() over (partition by stream, version order by _lsn, _offset) = 1
),

renamed as (
    -- Each schema version is brought to the current shape here, and only here. Version 1 is current:
    -- a positive quantity with the direction in the event type. An unknown version leaves
    -- quantity_delta NULL, which the model's not_null test turns into a failed build.
    select
        stream as product_id,
        version,
        event_type,
        case schema_version
            when 1 then case event_type
                when 'StockIncreased' then quantity
                when 'StockDecreased' then -quantity
            end
        end as quantity_delta,
        quantity,
        reason,
        command_id,
        occurred_at,
        schema_version,
        _lsn,
        _commit_ts,
        _batch_id
    from deduplicated
)

select * from renamed
