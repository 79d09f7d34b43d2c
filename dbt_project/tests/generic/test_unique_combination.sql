{#- No two rows share these columns' values. With recent_column (the model's partition column, a
    timestamp or, with recent_is_date, a date), only the last two days' rows (recent_rows): the
    check every detection run makes; without it, every row (`dbt test`, tag full_history). -#}
{% test unique_combination(model, columns, recent_column=none, recent_is_date=false) %}
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ model }}
    {% if recent_column is not none %}
        where {{ recent_rows(recent_column, recent_is_date) }}
    {% endif %}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
