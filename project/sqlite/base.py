"""Django's SQLite backend, with each statement's placeholders converted once, not per execution.

Django writes placeholders as ``%s``; Python's ``sqlite3`` takes ``?``. Django's SQLite cursor
converts them with a regular expression (a look-behind, so that ``%%s`` stays a literal) on every
execution, over the whole statement: about 9 µs for a one-row ``INSERT`` of a chat message, 68 µs
for a 15-row one, 5.5 µs for a reply's settling ``UPDATE``. That cost more than SQLite's own work
on those statements. Statements repeat (the ORM builds the same text for the same query shape, and
Switchyard's prepared statements are built once), so the converted text is kept per statement:
a lookup by the statement's text instead of a pass of the expression. The pyformat style (named
parameters) is converted as Django does, uncached.

Settings select this backend for every ``sqlite://`` ``DATABASE_URL`` (``project/settings.py``);
everything else is Django's backend as it ships, ``vendor`` included.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db.backends.sqlite3 import base

# Distinct statement texts kept; beyond it the least recently used are converted again.
STATEMENTS_KEPT = 2048


@functools.lru_cache(maxsize=STATEMENTS_KEPT)
def _qmark(query: str) -> str:
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Any = None) -> str:
        if param_names is None:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: Any = None) -> Any:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
