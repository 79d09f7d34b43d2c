{#- The type of an instant in UTC: DuckDB's timestamp with time zone (so analysts' tools see the zone
    the raw table has), BigQuery's TIMESTAMP (always UTC). -#}
{% macro type_utc_timestamp() %}
    {{ return(adapter.dispatch('type_utc_timestamp', 'mixpanel_alerts')()) }}
{% endmacro %}

{% macro default__type_utc_timestamp() %}
    timestamp with time zone
{% endmacro %}

{% macro bigquery__type_utc_timestamp() %}
    timestamp
{% endmacro %}
