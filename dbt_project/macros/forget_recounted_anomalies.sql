{#- Before an incremental run of `anomalies`: drop the windows it is about to recount, so a
    window that is no longer anomalous (a raised threshold) does not linger. -#}
{% macro forget_recounted_anomalies() %}
    {% if is_incremental() %}
        delete from {{ this }}
        where window_end_minute >= {{ minute_of(add_minutes(detection_now(), '-' ~ lookback_minutes())) }}
    {% endif %}
{% endmacro %}
