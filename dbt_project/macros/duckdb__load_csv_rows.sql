{#- The alert_rules seed is written from user data (event names with quotes, commas, newlines):
    DuckDB reads it with the options it was written with (every field quoted with ", quotes
    doubled), not with its sniffer, which guesses the quote character from the file. A quoted empty
    field is an empty string; only an unquoted empty field (a number left out) is null. -#}
{% macro duckdb__load_csv_rows(model, agate_table) %}
    {%- set seed_file_path = adapter.get_seed_file_path(model) | replace("'", "''") -%}
    {% set sql %}
        copy {{ this.render() }} from '{{ seed_file_path }}' (
            format csv, header true, delimiter ',', quote '"', escape '"', new_line '\n',
            auto_detect false, strict_mode true, null_padding false, nullstr '', allow_quoted_nulls false
        )
    {% endset %}
    {% do adapter.add_query(sql, abridge_sql_log=True) %}
    {{ return(sql) }}
{% endmacro %}
