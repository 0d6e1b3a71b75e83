{#
    The current state of a source table from its raw changelog, as a relation to select from: one
    row per primary key, its latest change, with the source's own column names (declared in
    models/staging/_sources.yml) and `_deleted`, `_lsn`, `_commit_ts`, `_batch_id`. The staging model
    that selects from it renames and casts, in plain SQL.

    - Order: per key by the source's commit order, then LSN, Kafka offset breaking ties; events
      Debezium re-sends after a restart carry their old position, so they never overtake a newer
      change, and identical ones collapse. The commit order is `source.sequence`'s first LSN (the last
      commit before the change's transaction): an incremental snapshot's read (`mirador resnapshot`)
      has no `source.lsn` and carries its chunk's closing watermark in `sequence`, while a change
      committed after that watermark may have an older LSN (its transaction wrote before the chunk was
      read and committed after), so by LSN alone the read would overwrite it or bring back a row it
      deleted. Reads take the watermark's LSN as theirs (`position_lsn`).
    - `_batch_id` is the newest batch with a change of the key (`mirador deadletters replay` lands old
      changes in new batches), so whatever reads staging by batch sees every row that changed.
    - Deletes stay as rows with `_deleted`, keeping the key's last known values (a delete event carries
      only the key), so an incremental build can replace the key's row and downstream models can tell
      whose figures the deleted row changes (the customer of a deleted order); marts filter them out.
    - Unchanged TOASTed values (`_unavailable`) are carried forward from the key's previous version.
    - A truncate removes everything older than it (here, and in the staged table by `truncate_hook`).
    - Incremental: only the keys with changes in batches newer than the staged table are folded again,
      from their whole changelog. The staged table is read for its newest batch only, so the model may
      name and compute its columns as it likes.
#}
{% macro current_state(source_name, table_name, keys) -%}
{%- set relation = raw_source(source_name, table_name) -%}
{%- set lsn = position_lsn() -%}
{%- set node = graph.sources.get('source.mirador.' ~ source_name ~ '.' ~ table_name) if execute else none -%}
{%- set value_columns = (node.columns.keys() if node else []) | reject("in", keys) | list -%}
{%- set key_list = keys | join(", ") -%}
(
    with

    truncated as (
        select coalesce(max(_lsn), -1) as lsn from {{ relation }} where _op = 't'
    ),

    {%- if is_incremental() %}

    touched as (
        select distinct {{ key_list }} from {{ relation }}
        where _op <> 't'
          and {{ lsn }} > (select lsn from truncated)
          and _batch_id > (select coalesce(max(_batch_id), -1) from {{ this }})
    ),
    {%- endif %}

    positioned as (
        select * replace ({{ lsn }} as _lsn)
        from {{ relation }}
        {%- if is_incremental() %}
        semi join touched using ({{ key_list }})
        {%- endif %}
        where _op <> 't'
          and {{ lsn }} > (select lsn from truncated)
    ),

    history as (
        select
            *,
            [coalesce(cast(json_extract_string(_seq, '$[0]') as bigint), _lsn), _lsn, _offset] as _order,
            coalesce(_unavailable, []) as _unchanged
        from positioned
    ),

    folded as (
        -- Per key, its newest change (by commit order, LSN, then offset) for the flags, and for each
        -- column the newest version that carries its value: not a delete (it carries only the key) and
        -- not an unchanged TOAST placeholder. One aggregate, not a window per column; `arg_max_null` keeps a value that
        -- is NULL.
        select
            {{ key_list }},
            {%- for column in value_columns %}
            arg_max_null({{ column }}, _order) filter (
                where not _deleted and not list_contains(_unchanged, '{{ column }}')
            ) as {{ column }},
            {%- endfor %}
            arg_max(_deleted, _order) as _deleted,
            max(_lsn) as _lsn,
            arg_max(_commit_ts, _order) as _commit_ts,
            -- the newest batch with a change of the key, not the batch of its newest change: a replayed
            -- dead letter lands after newer changes of its key and may still change the row (a TOASTed
            -- value only it carries), and the marts recompute the keys whose `_batch_id` passed theirs
            max(_batch_id) as _batch_id
        from history
        group by {{ key_list }}
    )

    select * from folded
)
{%- endmacro %}


{# Pre-hook of a current-state model: a truncate in the changelog empties the staged table up to it. #}
{% macro truncate_hook(source_name, table_name) -%}
    {%- if is_incremental() -%}
    {%- set relation = raw_source(source_name, table_name) -%}
    delete from {{ this }} where _lsn < (select coalesce(max(_lsn), -1) from {{ relation }} where _op = 't')
    {%- endif -%}
{%- endmacro %}


{#
    A change's LSN: `source.lsn`, or for an incremental snapshot's read (which has none) the LSN of
    the watermark that closed its chunk, which Debezium puts in `source.sequence`.
#}
{% macro position_lsn() -%}
    coalesce(_lsn, cast(json_extract_string(_seq, '$[1]') as bigint))
{%- endmacro %}
