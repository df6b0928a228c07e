"""Count what a piece of code sends: SQL statements (a SQLAlchemy event listener on the engine) and Redis
round trips (redis-py writes each command, or each pipeline, to its connection in one call), so a loop that
asks once per row instead of once per batch shows up as a number that grows with the rows."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest
from redis.connection import Connection
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


@pytest.fixture
def redis_round_trips(monkeypatch) -> list[bytes]:
    """Every write to a Redis connection from here on (one per command, one per pipeline)."""
    sent: list = []
    send = Connection.send_packed_command

    def record(self, command, check_health=True):
        sent.append(command)
        return send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", record)
    return sent
