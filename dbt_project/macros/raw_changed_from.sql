{#- The earliest event time among the raw rows loaded after `watermark` (an instant), as a lower
    bound for a read of them by event time that the warehouse can prune by, or none for no bound.

    - DuckDB: none. The raw table's row groups are in load order, so the read's `inserted_at >`
      bound skips every one loaded before; event time prunes nothing more.
    - BigQuery: the first day of the raw table's partitions modified since the watermark (less an
      hour for the collector's and BigQuery's clocks), from INFORMATION_SCHEMA.PARTITIONS: a
      metadata read. A row loaded after the watermark modified its partition after it, so no such
      row lies before that day; a table not partitioned by day (or its streaming buffer) gives
      none, and no partition modified gives the end of time (nothing arrived). -#}
{% macro raw_changed_from(watermark) %}
    {{ return(adapter.dispatch('raw_changed_from', 'mixpanel_alerts')(watermark)) }}
{% endmacro %}

{% macro default__raw_changed_from(watermark) %}
    {{ return(none) }}
{% endmacro %}

{% macro bigquery__raw_changed_from(watermark) %}
    {%- if not execute or watermark is none or unit_testing() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set raw = source('mixpanel', 'events') -%}
    {%- set query -%}
        select
            min(partition_id) as first_partition,
            countif(not regexp_contains(partition_id, r'^[0-9]{8}$')) as undated
        from `{{ raw.database }}`.`{{ raw.schema }}`.INFORMATION_SCHEMA.PARTITIONS
        where
            table_name = '{{ raw.identifier }}'
            and last_modified_time > timestamp_sub({{ literal_of(watermark) }}, interval 1 hour)
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[1] > 0 -%}
        {{ return(none) }}
    {%- elif row[0] is none -%}
        {{ return(modules.datetime.datetime(9999, 12, 31, tzinfo=modules.pytz.utc)) }}
    {%- endif -%}
    {{ return(modules.datetime.datetime.strptime(row[0], '%Y%m%d').replace(tzinfo=modules.pytz.utc)) }}
{% endmacro %}
