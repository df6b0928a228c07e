"""The SQLAlchemy engine and the scoped session every request, job and command uses.

One `db` object, bound in `create_app()`. The session is scoped to the thread and removed when the app
context ends, so a request (or a CLI command, or a job) commits once at its end.
"""
from __future__ import annotations

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import scoped_session, sessionmaker


class Database:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.autocommit_engine: Engine | None = None
        self.session = scoped_session(sessionmaker(expire_on_commit=False))

    def init_app(self, app) -> None:
        url = app.config["DATABASE_URL"]
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            self.engine = create_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800)
            # No pre-ping: it costs a round trip per checkout on the callback hot path; recycle instead.
        # A small pool of permanently autocommitting connections for single-statement hot paths
        # (the callback inbox): one round trip, no BEGIN/COMMIT, no per-checkout isolation switch.
        if url.startswith("sqlite"):
            self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            connect_args = {}
            if app.config.get("CALLBACK_SYNC_COMMIT", "on") == "off":
                # Only these connections: the inbox insert returns before its WAL flush (an opt-in trade-off).
                connect_args["options"] = "-c synchronous_commit=off"
            self.autocommit_engine = create_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800,
                                                   isolation_level="AUTOCOMMIT", connect_args=connect_args)
        self.session.configure(bind=self.engine)
        app.extensions["db"] = self
        app.teardown_appcontext(lambda exc: self.session.remove())

    @property
    def is_postgres(self) -> bool:
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


db = Database()
