"""Many rows in one statement, converted by each column's own bind processor.

Core's `session.execute(insert(table), [dict, ...])` builds a parameter dict per row and walks
every processor through its generic machinery: for the chat writer's three rows per message
that cost more than SQLite's own work. This compiles the INSERT once per dialect, looks up each
column's dialect bind processor once, and converts plain tuples in a tight loop, so the stored
values are exactly what Core would have stored (same processors). The statement is shaped for
the driver by the batch committer: multi-row VALUES for SQLite, arrays to unnest for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError

Processor = Callable[[Any], Any] | None
PreparedInsert = tuple[str, list[tuple[Any, ...]]]


class BulkInsert:
    """`INSERT INTO table (columns...)` for many rows at once (one statement)."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        self._compiled: dict[str, tuple[str, list[int], list[Processor]]] = {}
        self._unnest: dict[tuple[str, int], str] = {}

    def prepare(self, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> PreparedInsert:
        """The SQL for `dialect` and `rows` converted for its driver."""
        sql, order, processors = self._for(dialect)
        try:
            return sql, _convert(rows, order, processors)
        except Exception as exc:
            # A value no bind processor takes is the caller's data, as Core would report it.
            raise StatementError(str(exc), sql, None, exc) from exc

    def prepare_multirow(
        self, dialect: Dialect, rows: Sequence[Sequence[Any]], max_parameters: int
    ) -> list[tuple[str, list[Any]]]:
        """`rows` as few `INSERT ... VALUES (...), (...)` statements, each with its values
        flattened: one statement step instead of one per row. For a driver on a thread of
        its own (sqlite3) each step gives the GIL up and waits to get it back, up to the
        switch interval (5 ms) while the event loop is busy."""
        sql, converted = self.prepare(dialect, rows)
        head, _, group = sql.partition(" VALUES ")
        per_statement = max(1, max_parameters // max(1, len(self.columns)))
        statements = []
        for start in range(0, len(converted), per_statement):
            chunk = converted[start : start + per_statement]
            flat = [value for row in chunk for value in row]
            statements.append((f"{head} VALUES {', '.join([group] * len(chunk))}", flat))
        return statements

    def prepare_unnest(
        self, dialect: Dialect, rows: Sequence[Sequence[Any]], first: int
    ) -> tuple[str, list[list[Any]]]:
        """`INSERT ... SELECT * FROM unnest($first::type[], ...)` and its values, one array
        per column (PostgreSQL): a statement whose text does not change with the number of
        rows, so the driver prepares it once per connection."""
        _, converted = self.prepare(dialect, rows)
        statement = self._unnest.get((dialect.name, first))
        if statement is None:
            sql, order, _ = self._for(dialect)
            head = sql.partition(" VALUES ")[0]
            casts = [
                self.table.c[self.columns[index]].type.compile(dialect=dialect) for index in order
            ]
            arrays = ", ".join(f"${first + n}::{cast}[]" for n, cast in enumerate(casts))
            # Only the table's own compiled names and types go into the text; values are bound.
            statement = f"{head} SELECT * FROM unnest({arrays})"  # noqa: S608
            # Built once per first parameter, not per batch (compiling the types of the chat's
            # two tables is ~50 us, each time the same text).
            self._unnest[(dialect.name, first)] = statement
        return statement, [list(column) for column in zip(*converted, strict=True)]

    def _for(self, dialect: Dialect) -> tuple[str, list[int], list[Processor]]:
        cached = self._compiled.get(dialect.name)
        if cached is not None:
            return cached
        statement = insert(self.table).values({name: bindparam(name) for name in self.columns})
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:
            raise NotImplementedError(f"BulkInsert needs a positional paramstyle ({dialect.name})")
        order = [self.columns.index(name) for name in compiled.positiontup]
        processors: list[Processor] = [
            self.table.c[self.columns[index]].type.dialect_impl(dialect).bind_processor(dialect)
            for index in order
        ]
        built = (str(compiled), order, processors)
        self._compiled[dialect.name] = built
        return built


def _convert(
    rows: Sequence[Sequence[Any]], order: list[int], processors: list[Processor]
) -> list[tuple[Any, ...]]:
    """Each row's values through its column's processor, in the statement's order.

    Batches repeat values (one `now` for every row, the same tenant and conversation for
    neighbours), so a column whose value is the very object of the previous row reuses its
    converted form instead of formatting a timestamp or a UUID again.
    """
    width = len(order)
    last_in: list[Any] = [_NOTHING] * width
    last_out: list[Any] = [None] * width
    converted = []
    for row in rows:
        values = []
        for position in range(width):
            value = row[order[position]]
            process = processors[position]
            if process is None or value is None:
                values.append(value)
            elif value is last_in[position]:
                values.append(last_out[position])
            else:
                out = process(value)
                last_in[position] = value
                last_out[position] = out
                values.append(out)
        converted.append(tuple(values))
    return converted


_NOTHING = object()
