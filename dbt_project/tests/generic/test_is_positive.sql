{#- The column is above zero (nulls pass). With recent_column, only the last two days' rows, as
    unique_combination. -#}
{% test is_positive(model, column_name, recent_column=none) %}
    select * from {{ model }}
    where
        {{ column_name }} <= 0
        {% if recent_column is not none %}
            and {{ recent_rows(recent_column) }}
        {% endif %}
{% endtest %}
