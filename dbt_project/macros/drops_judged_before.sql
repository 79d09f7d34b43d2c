{#- The minute before which windows are complete enough to be judged for a drop: the current
    minute, or the minute of the newest data collected if that is earlier, less var
    drop_settle_minutes (the events of the last minutes are still arriving). A window whose last
    minute is not before it is never a drop yet: counted zeros past the data the pipeline has seen
    are the pipeline's news, not the event's (Datadog calls this an evaluation delay).

    The newest data collected is var('data_through') when given (unit tests, `dbt build --vars`),
    else the environment's DETECTION_DATA_THROUGH (ISO 8601, UTC unless it says), which
    `mixpanel-alerts` sets to the newest Mixpanel processing time its collects recorded
    (pipeline_runs); without either, the current minute alone. Read only while dbt executes, as
    DETECTION_NOW is: a new value costs no parse. -#}
{% macro drops_judged_before() %}
    {%- set given = var('data_through', '') or (env_var('DETECTION_DATA_THROUGH', '') if execute else '') -%}
    {%- set settle = var('drop_settle_minutes') | int -%}
    {%- if given -%}
        {%- set through = modules.datetime.datetime.fromisoformat(given | string) -%}
        {%- if through.tzinfo is not none -%}
            {%- set through = through.astimezone(modules.pytz.utc) -%}
        {%- endif -%}
        {%- set literal = "cast('" ~ through.strftime('%Y-%m-%d %H:%M:%S') ~ "' as " ~ type_utc_timestamp() ~ ")" -%}
        {{ return(add_minutes(minute_of('least(' ~ detection_now() ~ ', ' ~ literal ~ ')'), -1 * settle)) }}
    {%- endif -%}
    {{ return(add_minutes(minute_of(detection_now()), -1 * settle)) }}
{% endmacro %}
