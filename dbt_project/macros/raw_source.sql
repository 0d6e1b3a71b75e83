{#
    The raw changelog table of a source, or an empty relation of the same shape when the loader has
    not landed any change for it yet (a service that never wrote a row has no raw table). The shape
    comes from the columns declared in the source's YAML (`data_type`) plus the loader's metadata.

    With the var `mirador_through_batch` (set by the pipeline), only the batches up to it: inside
    `mirador run` the loader keeps landing while dbt builds, and every model of one build must see
    the same batches, or a mart would join one input's new rows with another's old ones and mark
    them built. The bound is followed by a marker comment so that `mirador run`, replaying the SQL a
    build ran (warehouse/build/recordings.py), can put the next build's batch in its place.
#}
{% macro raw_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- set through = var('mirador_through_batch', none) -%}
    {%- if not execute or adapter.get_relation(relation.database, relation.schema, relation.identifier) -%}
        {%- if through is none -%}
        {{ relation }}
        {%- else -%}
        (select * from {{ relation }} where _batch_id <= {{ through | int }} /* mirador_through_batch */)
        {%- endif -%}
    {%- else -%}
        {%- set node = graph.sources['source.mirador.' ~ source_name ~ '.' ~ table_name] -%}
        (
            select
                {%- for column in node.columns.values() %}
                cast(null as {{ column.data_type }}) as {{ column.name }},
                {%- endfor %}
                {%- for name, type in raw_metadata_columns().items() %}
                cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
                {%- endfor %}
            where false
        )
    {%- endif -%}
{%- endmacro %}


{#
    The build that wrote a mart's row: the last batch the build read (var `mirador_through_batch`).
    Publication copies the previous publication and applies only the rows written since it, plus the
    keys gone (warehouse/publish/snapshot.py); replay puts the next build's batch in place of the marked one.
    NULL when dbt runs without the var (an analyst's build): publication compares those rows whole.
#}
{% macro built_batch() -%}
    {%- set through = var('mirador_through_batch', none) -%}
    {%- if through is none -%}
    cast(null as bigint)
    {%- else -%}
    cast({{ through | int }} /* mirador_built_batch */ as bigint)
    {%- endif -%}
{%- endmacro %}


{# The loader's metadata columns on every raw table (warehouse/ingest/catalog.py documents them). #}
{% macro raw_metadata_columns() -%}
    {{ return({
        "_op": "varchar", "_deleted": "boolean", "_snapshot": "boolean", "_lsn": "bigint",
        "_seq": "varchar", "_txid": "bigint", "_commit_ts": "timestamptz", "_unavailable": "varchar[]",
        "_topic": "varchar", "_partition": "integer", "_offset": "bigint", "_batch_id": "bigint",
        "_loaded_at": "timestamptz",
    }) }}
{%- endmacro %}
