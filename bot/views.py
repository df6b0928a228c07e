"""`/wecom/callback`: URL verification (GET) and pushes (POST). Stores and acknowledges; the work is a job."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from bot import inbound

bp = Blueprint("wecom", __name__, url_prefix="/wecom")
log = logging.getLogger(__name__)


def _rejected(exc: inbound.CallbackRejected) -> Response:
    log.warning("callback rejected (%s): %s from %s", exc.status, exc.reason, request.remote_addr)
    return Response(exc.reason, status=exc.status, mimetype="text/plain")


@bp.get("/callback")
def verify():
    try:
        echo = inbound.verify_url(request.args)
    except inbound.CallbackRejected as exc:
        return _rejected(exc)
    return Response(echo, mimetype="text/plain")


@bp.post("/callback")
def receive():
    try:
        fields = inbound.decrypt_callback(request.args, request.get_data(cache=False))
    except inbound.CallbackRejected as exc:
        return _rejected(exc)
    # Stored is acknowledged: the workers' relay (bot.tasks.relay_inbox) queues the job, so this request
    # costs one INSERT (shared with callbacks arriving at the same time) and never waits on Redis.
    if inbound.accept(fields) is None:
        log.info("duplicate callback acknowledged: %s", inbound.dedup_key(fields))
    return Response("", mimetype="text/plain")


@bp.errorhandler(413)
def too_large(_exc):
    log.warning("callback rejected (413): body over %s bytes", current_app.config["MAX_CONTENT_LENGTH"])
    return Response("body too large", status=413, mimetype="text/plain")
