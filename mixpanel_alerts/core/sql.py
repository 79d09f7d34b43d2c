"""SQL literals built from user data (event names, paths, properties): the one quoter.

Parameters are used wherever a driver takes them; a literal is for the places that cannot (a DDL
statement, a SQL file dlt runs, SQL shown to a user to paste).
"""

from __future__ import annotations

# Spelled as chr(n): quotes and backslashes (escaped differently by DuckDB and BigQuery), backticks
# (a run of them would close a Slack code block) and control characters (a line break cannot sit in a
# BigQuery string, and dlt's model files are read back with newline translation).
_SPELLED = "'\\`"


def sql_string(text: str) -> str:
    """``text`` as a SQL string expression that means the same on DuckDB and BigQuery: the hard
    characters are ``chr(code)``, the rest plain quoted strings, joined with ``||`` (in
    parentheses when there is more than one piece)."""
    pieces: list[str] = []
    plain = ""
    for character in text:
        if character in _SPELLED or ord(character) < 32:
            if plain:
                pieces.append(f"'{plain}'")
                plain = ""
            pieces.append(f"chr({ord(character)})")
        else:
            plain += character
    if plain or not pieces:
        pieces.append(f"'{plain}'")
    return pieces[0] if len(pieces) == 1 else "(" + " || ".join(pieces) + ")"


def sql_string_list(values: list[str]) -> str:
    """``'a', 'b'`` for an ``in (…)`` list; ``null`` for none (``x in (null)`` matches nothing)."""
    return ", ".join(sql_string(value) for value in values) or "null"
