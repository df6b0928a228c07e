"""Run the stand-in in a background thread (tests, `python app.py` in demo mode)."""
from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from wecom_standin.corp import Corp
from wecom_standin.server import create_standin_app


class RedactingRequestHandler(WSGIRequestHandler):
    """werkzeug's access log without query strings (they carry access tokens and the corp secret)."""

    def log_request(self, code="-", size="-"):
        saved_path, saved_line = getattr(self, "path", None), self.requestline
        if saved_path is not None:
            self.path = saved_path.split("?", 1)[0]
        method, _, rest = saved_line.partition(" ")
        target, _, proto = rest.partition(" ")
        self.requestline = f"{method} {target.split('?', 1)[0]} {proto}".strip()
        try:
            super().log_request(code, size)
        finally:
            self.requestline = saved_line
            if saved_path is not None:
                self.path = saved_path


class StandinServer:
    """`StandinServer(corp, port=0, token=…, aes_key=…, corp_id=…, callback_url=…).start()`; `.stop()` after."""

    def __init__(self, corp: Corp, port: int = 0, host: str = "127.0.0.1", **crypto):
        self.corp = corp
        self.host = host
        self.port = port
        self.app = create_standin_app(corp, **crypto)
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/cgi-bin/"

    @property
    def callback_url(self) -> str | None:
        return self.app.config["CALLBACK_URL"]

    @callback_url.setter
    def callback_url(self, url: str | None) -> None:
        self.app.config["CALLBACK_URL"] = url

    def start(self) -> "StandinServer":
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=RedactingRequestHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"wecom-standin-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "StandinServer":
        return self.start() if self._server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
