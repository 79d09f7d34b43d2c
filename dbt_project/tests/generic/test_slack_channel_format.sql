{% test slack_channel_format(model, column_name) %}
    -- '#lower-case-name' or a channel id such as C0123456789
    select * from {{ model }}
    where not (
        ({{ column_name }} like '#%' and lower({{ column_name }}) = {{ column_name }})
        or ({{ column_name }} like 'C%' and upper({{ column_name }}) = {{ column_name }})
        or ({{ column_name }} like 'G%' and upper({{ column_name }}) = {{ column_name }})
    )
{% endtest %}
