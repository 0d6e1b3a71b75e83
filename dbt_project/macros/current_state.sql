{#
    The current state of a source table from its raw changelog: the latest change per primary key.

    - Order: per key by source LSN (row locks serialise writers of one row, so LSN order is commit
      order per key), Kafka offset breaking ties; events Debezium re-sends after a restart carry their
      old LSN, so they never overtake a newer change, and identical ones collapse.
    - Deletes stay as rows with `_deleted`, keeping the key's last known values (a delete event carries
      only the key), so an incremental build can replace the key's row and downstream models can tell
      whose figures the deleted row changes (the customer of a deleted order); marts filter them out.
    - Unchanged TOASTed values (`_unavailable`) are carried forward from the key's previous version,
      in this batch or already staged.
    - A truncate removes everything older than it (here, and in the staged table by `truncate_hook`).
    - Incremental: only keys with changes in batches newer than the staged table are recomputed.
#}
{% macro current_state(relation, keys, columns, renames={}) -%}
{#- keys and columns are raw (source) names; renames maps some of them to their staged names. -#}
{%- set staged = {} -%}
{%- for column in keys + columns -%}{%- do staged.update({column: renames.get(column, column)}) -%}{%- endfor -%}
{%- set staged_keys = [] -%}
{%- for column in keys -%}{%- do staged_keys.append(staged[column]) -%}{%- endfor -%}
{%- set key_list = staged_keys | join(", ") -%}
{%- set value_columns = columns | reject("in", keys) | list -%}
with

truncated as (
    select coalesce(max(_lsn), -1) as lsn from {{ relation }} where _op = 't'
),

changes as (
    select
        {%- for column in keys + value_columns %}
        {{ column }} as {{ staged[column] }},
        {%- endfor %}
        coalesce(_unavailable, []) as _unavailable,
        _deleted,
        _lsn,
        _offset,
        _commit_ts,
        _batch_id
    from {{ relation }}
    where _op <> 't'
      and _lsn > (select lsn from truncated)
    {%- if is_incremental() %}
      and _batch_id > (select coalesce(max(_batch_id), -1) from {{ this }})
    {%- endif %}
),

previous as (
    {%- if is_incremental() %}
    select
        {%- for column in keys + value_columns %}
        staged.{{ staged[column] }},
        {%- endfor %}
        cast([] as varchar[]) as _unavailable,
        staged._deleted,
        staged._lsn,
        -1 as _offset,  -- marks the staged version: its values stand, even on a delete
        staged._commit_ts,
        staged._batch_id
    from {{ this }} as staged
    inner join (select distinct {{ key_list }} from changes) as touched using ({{ key_list }})
    {%- else %}
    select * from changes where false
    {%- endif %}
),

history as (
    select
        *,
        [_lsn, _offset] as _order,
        not _deleted or _offset = -1 as _has_values  -- a delete carries only the key
    from (
        select * from previous
        union all by name
        select * from changes
    )
),

final as (
    -- Per key, its newest change (by LSN, then offset) for the flags, and for each column the newest
    -- version that carries its value: not a delete (unless it is the staged version) and not an
    -- unchanged TOAST placeholder. One aggregate, not a window per column; `arg_max_null` keeps a
    -- value that is NULL.
    select
        {{ key_list }},
        {%- for column in value_columns %}
        arg_max_null({{ staged[column] }}, _order) filter (
            where _has_values and not list_contains(_unavailable, '{{ column }}')
        ) as {{ staged[column] }},
        {%- endfor %}
        arg_max(_deleted, _order) as _deleted,
        max(_lsn) as _lsn,
        arg_max(_commit_ts, _order) as _commit_ts,
        arg_max(_batch_id, _order) as _batch_id
    from history
    group by {{ key_list }}
)

select * from final
{%- endmacro %}


{# Pre-hook of a current-state model: a truncate in the changelog empties the staged table up to it. #}
{% macro truncate_hook(relation) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where _lsn < (select coalesce(max(_lsn), -1) from {{ relation }} where _op = 't')
    {%- endif -%}
{%- endmacro %}
