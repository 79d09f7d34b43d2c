{#- Before an incremental run: when the moment went back (a replay: DETECTION_NOW earlier than the
    last run's, int_detection_plan), drop the rows of the rules concerned that lie after it, as
    a full refresh would not have them. The rows are named by a minute column, or by a day column
    and an hour-of-day column (baselines, in DETECTION_TIMEZONE), or a day column alone. Reads nothing otherwise. -#}
{% macro forget_after_the_moment(minute_column=none, day_column=none, hour_column=none) %}
    {%- set plan = ref('int_detection_plan') -%}
    {%- set went_back = "from " ~ plan ~ " where previous_last_counted > last_minute" -%}
    {%- set moment = single_value("select min(last_minute) " ~ went_back) if is_incremental() else none -%}
    {%- if moment is not none -%}
        {%- set local = local_day_and_hour(moment) -%}
        {%- set day = literal_of(local[0]) -%}
        delete from {{ this }}
        where
            rule_id in (select rule_id {{ went_back }})
            {% if minute_column is not none %}
                and {{ minute_column }} > {{ literal_of(moment) }}
            {% elif hour_column is not none %}
                and {{ day_column }} >= {{ day }}
                and ({{ day_column }} > {{ day }} or {{ hour_column }} > {{ local[1] }})
            {% else %}
                and {{ day_column }} > {{ day }}
            {% endif %}
    {%- endif -%}
{% endmacro %}
