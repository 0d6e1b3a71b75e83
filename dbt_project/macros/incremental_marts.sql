{#
    Helpers for marts built incrementally by key: a mart recomputes only the keys whose inputs changed
    since the newest batch it already holds (its own `_batch_id`), and everything after a truncate.
#}

{# The newest loader batch the mart already reflects. #}
{% macro mart_watermark() -%}
    (select coalesce(max(_batch_id), -1) from {{ this }})
{%- endmacro %}


{# True when any of the raw sources was truncated after the mart's watermark. #}
{% macro truncated_since_watermark(sources) -%}
    (
        {%- for source_name, table_name in sources %}
        exists (select 1 from {{ raw_source(source_name, table_name) }}
                where _op = 't' and _batch_id > {{ mart_watermark() }})
        {{- " or" if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}


{# Post-hook: keys whose staging row is now a delete leave the mart. #}
{% macro delete_tombstones(staging, key) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ key }} in (select {{ key }} from {{ staging }} where _deleted)
    {%- endif -%}
{%- endmacro %}


{#
    Pre-hook of an incremental mart: the keys it recomputes, computed first into a temporary table.
    The model then reads its inputs for those keys only. As a CTE, the planner cannot tell how few
    they are (a truncate branch may select them all), and at 1M orders it hashed the whole staging
    table to probe it with a few hundred keys; from a table it knows their number, hashes the keys,
    and pushes them into the scans of the inputs (ADR 13).
#}
{% macro touched_table(keys_sql) -%}
    {%- if is_incremental() -%}
    create or replace temporary table {{ touched_relation() }} as {{ keys_sql }}
    {%- endif -%}
{%- endmacro %}


{# The temporary table `touched_table` fills, named after the model. #}
{% macro touched_relation() -%}
    {{ this.identifier }}__touched
{%- endmacro %}
