{# Schemas are named exactly as configured (`staging`, `marts`): the read API and analysts rely on them. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
