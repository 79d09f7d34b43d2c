{#- A test's `where` on an incremental model for every detection run: the rows of the last two days
    before detection's moment, by the model's partition column (a constant bound: BigQuery prunes
    to those partitions, DuckDB skips older row groups), so a run's tests read what runs write
    now, not the whole history. The same tests on every row are tagged full_history and run with
    `dbt test`. `column` is a timestamp, or a date with is_date. -#}
{% macro recent_rows(column, is_date=false) %}
    {%- if is_date -%}
        {{ column }} >= {{ days_before(utc_date(detection_now()), 2) }}
    {%- else -%}
        {{ column }} >= {{ add_minutes(detection_now(), -2 * 24 * 60) }}
    {%- endif -%}
{% endmacro %}
