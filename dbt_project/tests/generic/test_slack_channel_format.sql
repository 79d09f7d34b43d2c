{% test slack_channel_format(model, column_name) %}
    -- the events configuration's channel rule (var slack_channel_pattern, which the product sets
    -- from mixpanel_alerts/events_config.py): '#lower-case-name' or a channel id such as C0123456789
    select * from {{ model }}
    where not {{ matches_pattern(column_name, var('slack_channel_pattern')) }}
{% endtest %}
