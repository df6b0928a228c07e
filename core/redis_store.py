"""Redis: a real server when REDIS_URL is set, otherwise an in-process stand-in (fakeredis).

The stand-in lives in this process only: fine for the embedded demo, useless across gunicorn workers.
"""
from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)


class RedisStore:
    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self.embedded = False

    def init_app(self, app) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
            self.embedded = False
        else:
            import fakeredis

            self.client = fakeredis.FakeRedis(server=_embedded_server())
            self.embedded = True
            log.warning("REDIS_URL is not set: using the in-process Redis stand-in (not for production)")
        app.extensions["redis"] = self


_server = None


def _embedded_server():
    # One fake server per process, so every FakeRedis client made here sees the same data.
    global _server
    if _server is None:
        import fakeredis

        _server = fakeredis.FakeServer()
    return _server


rstore = RedisStore()


def get_redis() -> redis.Redis:
    return rstore.client
