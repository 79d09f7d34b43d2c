{#- The detection clock: DETECTION_TIMEZONE (var detection_timezone, an IANA name; the product
    passes it), whose days and hours of day baselines learn by. Storage stays UTC; in UTC the
    macros keep the epoch arithmetic of utc_date and utc_hour (several times cheaper on DuckDB
    than a time zone conversion). -#}
{% macro detection_timezone() %}
    {{ return(var('detection_timezone', 'UTC') or 'UTC') }}
{% endmacro %}

{% macro in_utc() %}
    {{ return(detection_timezone() in ('UTC', 'Etc/UTC', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Universal', 'Zulu')) }}
{% endmacro %}

{#- The local calendar day of an instant, as a date. -#}
{% macro local_date(timestamp_expression) %}
    {%- if in_utc() -%}
        {{ return(utc_date(timestamp_expression)) }}
    {%- endif -%}
    {{ return(adapter.dispatch('local_date', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__local_date(timestamp_expression) %}
    cast(timezone('{{ detection_timezone() }}', {{ timestamp_expression }}) as date)
{% endmacro %}

{% macro bigquery__local_date(timestamp_expression) %}
    date({{ timestamp_expression }}, '{{ detection_timezone() }}')
{% endmacro %}

{#- The local hour of day (0-23) of an instant: on the day the clocks go back, two hours of
    instants share one local hour; on the day they go forward, one local hour has none. -#}
{% macro local_hour(timestamp_expression) %}
    {%- if in_utc() -%}
        {{ return(utc_hour(timestamp_expression)) }}
    {%- endif -%}
    {{ return(adapter.dispatch('local_hour', 'mixpanel_alerts')(timestamp_expression)) }}
{% endmacro %}

{% macro default__local_hour(timestamp_expression) %}
    hour(timezone('{{ detection_timezone() }}', {{ timestamp_expression }}))
{% endmacro %}

{% macro bigquery__local_hour(timestamp_expression) %}
    extract(hour from {{ timestamp_expression }} at time zone '{{ detection_timezone() }}')
{% endmacro %}

{#- The first instant at or after which a local day's hour of day begins; in UTC exactly, else an
    hour earlier (an hour the clocks went back over begins twice): a lower bound. -#}
{% macro local_hour_start(date_expression, hour_expression) %}
    {%- if in_utc() -%}
        {{ return(add_minutes(day_start(date_expression), hour_expression ~ ' * 60')) }}
    {%- endif -%}
    {{ return(adapter.dispatch('local_hour_start', 'mixpanel_alerts')(date_expression, hour_expression)) }}
{% endmacro %}

{% macro default__local_hour_start(date_expression, hour_expression) %}
    timezone(
        '{{ detection_timezone() }}',
        cast({{ date_expression }} as timestamp) + to_hours(cast({{ hour_expression }} as bigint) - 1)
    )
{% endmacro %}

{% macro bigquery__local_hour_start(date_expression, hour_expression) %}
    timestamp_sub(
        timestamp(datetime_add(datetime({{ date_expression }}), interval {{ hour_expression }} hour), '{{ detection_timezone() }}'),
        interval 1 hour
    )
{% endmacro %}

{#- Whether a (local) day is a Saturday or a Sunday. -#}
{% macro is_weekend(date_expression) %}
    {{ return(adapter.dispatch('is_weekend', 'mixpanel_alerts')(date_expression)) }}
{% endmacro %}

{% macro default__is_weekend(date_expression) %}
    (dayofweek({{ date_expression }}) in (0, 6))
{% endmacro %}

{% macro bigquery__is_weekend(date_expression) %}
    (extract(dayofweek from {{ date_expression }}) in (1, 7))
{% endmacro %}

{#- In Jinja, for literal bounds: a date no later than the local day of `instant` (a datetime,
    naive is UTC), and a datetime (UTC) no later than the first instant of the local `day`. -#}
{% macro local_date_floor(instant) %}
    {{ return(instant.date() if in_utc() else instant.date() - modules.datetime.timedelta(days=1)) }}
{% endmacro %}

{% macro local_day_floor(day) %}
    {%- set start = modules.datetime.datetime.combine(day, modules.datetime.time()) -%}
    {{ return(start if in_utc() else start - modules.datetime.timedelta(days=1)) }}
{% endmacro %}

{#- In Jinja: the local day and hour of day of an instant (a datetime, naive is UTC). -#}
{% macro local_day_and_hour(instant) %}
    {%- set aware = instant if instant.tzinfo is not none else modules.pytz.utc.localize(instant) -%}
    {%- set local = aware.astimezone(modules.pytz.timezone(detection_timezone())) -%}
    {{ return((local.date(), local.hour)) }}
{% endmacro %}
