{#- Before an incremental run: an event counted again from scratch (int_detection_plan.recount_all)
    loses its rows outside its known data now (its data now begins later, or the moment went
    back), as a full refresh would not have them. The rows are named by a minute column, or by a
    day column (rows of days wholly before the known data). A table keyed by day (and hour of day)
    also loses every row of an event judged again from scratch (rewindow_all: a changed rule, or
    DETECTION_TIMEZONE, which moves every day and hour): the run writes all of them again, and
    none keyed by the old clock may stay. Reads nothing unless such an event exists. -#}
{% macro forget_outside_known_data(minute_column=none, day_column=none) %}
    {%- set plan = ref('int_detection_plan') -%}
    {%- set flag = 'recount_all' if minute_column is not none else '(recount_all or rewindow_all)' -%}
    {%- if is_incremental() and (single_value("select count(*) from " ~ plan ~ " where " ~ flag) or 0) > 0 -%}
        delete from {{ this }} as target
        where exists (
            select 1
            from {{ plan }} as plan
            where
                plan.rule_id = target.rule_id
                and (
                    {% if minute_column is not none %}
                        plan.recount_all and (
                            plan.known_from is null
                            or target.{{ minute_column }} < plan.known_from
                            or target.{{ minute_column }} > plan.last_minute
                        )
                    {% else %}
                        plan.rewindow_all
                        or plan.recount_all and (
                            plan.known_from is null
                            or target.{{ day_column }} < {{ local_date('plan.known_from') }}
                            or target.{{ day_column }} > {{ local_date('plan.last_minute') }}
                        )
                    {% endif %}
                )
        )
    {%- endif -%}
{% endmacro %}
