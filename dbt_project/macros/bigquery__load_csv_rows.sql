{#- The alert_rules seed is written from user data (event names with quotes, commas, newlines):
    BigQuery loads it with the options it was written with (every field quoted with ", quotes
    doubled, newlines inside quotes allowed, control characters kept) into a table of the seed's
    column types, not with the load job's defaults, which refuse a quoted newline. -#}
{% macro bigquery__load_csv_rows(model, agate_table) %}
    {%- set column_types = model['config'].get('column_types', {}) -%}
    {%- set columns = [] -%}
    {%- for name in agate_table.column_names -%}
        {%- do columns.append(adapter.quote(name) ~ ' ' ~ column_types.get(name, 'string')) -%}
    {%- endfor -%}
    {% call statement('create_seed_table') %}
        create or replace table {{ this.render() }} ({{ columns | join(', ') }})
    {% endcall %}
    {% do adapter.upload_file(
        agate_table.original_abspath, model['database'], model['schema'], model['alias'],
        kwargs={
            'source_format': 'CSV',
            'skip_leading_rows': 1,
            'field_delimiter': ',',
            'quote_character': '"',
            'allow_quoted_newlines': true,
            'preserve_ascii_control_characters': true,
            'encoding': 'UTF-8',
            'write_disposition': 'WRITE_TRUNCATE',
        }
    ) %}
{% endmacro %}
