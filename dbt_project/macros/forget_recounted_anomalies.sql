{#- Before an incremental run of `anomalies`: drop the windows it is about to recount, so a
    window that is no longer anomalous (a raised threshold) does not linger. -#}
{% macro forget_recounted_anomalies() %}
    {% if is_incremental() %}
        delete from {{ this }}
        where window_end_minute >= {{ minute_of(dbt.dateadd('minute', -1 * var('lookback_minutes'), detection_now())) }}
    {% endif %}
{% endmacro %}
