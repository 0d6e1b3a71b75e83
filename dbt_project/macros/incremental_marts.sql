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
