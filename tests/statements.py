"""Count the SQL statements a piece of code sends: a SQLAlchemy event listener on the engine, so a loop that
queries once per row (instead of once per batch) shows up as a number that grows with the rows."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event

from core.db import db


@contextmanager
def statements(containing: str = "") -> Iterator[list[str]]:
    """The statements sent inside the block (those whose SQL contains `containing`, case-insensitive)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if containing.lower() in statement.lower():
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
