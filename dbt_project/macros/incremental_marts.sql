{#
    Helpers for marts built incrementally by key: a mart recomputes only the keys whose inputs changed
    since the newest batch it already holds (its own `_batch_id`), and every key after a truncate.
    Each mart's `<noun>_touched()` macro (macros/marts/) says how the changes of each model it reads
    map to its keys; `touched_table` refuses to build a mart that reads a model its macro ignores.
#}

{# The newest loader batch the mart already reflects. #}
{% macro mart_watermark() -%}
    (select coalesce(max(_batch_id), -1) from {{ this }})
{%- endmacro %}


{# The raw sources upstream of the model, found in the project's graph: [(source_name, table_name)]. #}
{% macro upstream_sources(unique_ids=none) -%}
    {%- set found = [] -%}
    {%- for unique_id in (model.depends_on.nodes if unique_ids is none else unique_ids) -%}
        {%- if unique_id in graph.sources -%}
            {%- do found.append((graph.sources[unique_id].source_name, graph.sources[unique_id].name)) -%}
        {%- elif unique_id in graph.nodes -%}
            {%- do found.extend(upstream_sources(graph.nodes[unique_id].depends_on.nodes)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found | unique | sort) }}
{%- endmacro %}


{# True when any raw source upstream of the mart was truncated after the mart's watermark. #}
{% macro truncated_since_watermark() -%}
    (
        {%- for source_name, table_name in upstream_sources() %}
        exists (select 1 from {{ raw_source(source_name, table_name) }}
                where _op = 't' and _batch_id > {{ mart_watermark() }})
        {{- " or" if not loop.last }}
        {%- else %}
        false
        {%- endfor %}
    )
{%- endmacro %}


{#
    Refuses to build a mart whose touched keys (`keys_sql`, the rendered `<noun>_touched()`) do not
    read every model the mart reads: the changes of a model they ignore would leave its rows stale,
    without a word, until the next full refresh.
#}
{% macro check_touched_reads(keys_sql) -%}
    {%- if execute -%}
        {%- set ignored = [] -%}
        {%- for unique_id in model.depends_on.nodes if unique_id in graph.nodes -%}
            {%- set name = graph.nodes[unique_id].name -%}
            {%- if (ref(name) | string) not in keys_sql -%}{%- do ignored.append(name) -%}{%- endif -%}
        {%- endfor -%}
        {%- if ignored -%}
            {%- do exceptions.raise_compiler_error(
                model.name ~ " reads " ~ ignored | join(", ") ~ ", which its touched keys do not: a change there "
                ~ "would not rebuild the rows it affects. Say in macros/marts/ which keys its changes touch.") -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#
    Pre-hook of an incremental mart: the keys it recomputes, written first into a temporary table,
    and their rows taken out of the mart. The model then reads its inputs for those keys only and
    inserts their rows anew; a key it no longer gives a row for (deleted, or gone with a truncate)
    stays out. After a truncate upstream every key the mart holds is recomputed.

    As a CTE, the planner cannot tell how few the keys are (a truncate branch may select them all),
    and at 1M orders it hashed the whole staging table to probe it with a few hundred keys; from a
    table it knows their number, hashes the keys, and pushes them into the scans of the inputs (ADR 13).
#}
{% macro touched_table(keys_sql) -%}
    {%- do check_touched_reads(keys_sql) -%}
    {%- if is_incremental() -%}
    {%- set key = config.get('unique_key') -%}
    create or replace temporary table {{ touched_relation() }} as
    {{ keys_sql }}
    union
    select {{ key }} from {{ this }} where {{ truncated_since_watermark() }};
    delete from {{ this }} where {{ key }} in (select {{ key }} from {{ touched_relation() }})
    {%- endif -%}
{%- endmacro %}


{# The temporary table `touched_table` fills, named after the model. #}
{% macro touched_relation() -%}
    {{ this.identifier }}__touched
{%- endmacro %}
