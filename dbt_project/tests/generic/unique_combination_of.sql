{# Fails for every combination of `columns` that occurs more than once (no package needed). #}
{% test unique_combination_of(model, columns) %}
select {{ columns | join(", ") }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(", ") }}
having count(*) > 1
{% endtest %}
