"""`flask --app app wecom standin|fire …` and `start_embedded_standin(app)`."""
from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

import click
import requests
from flask import current_app
from flask.cli import AppGroup

from wecom_standin.corp import DEMO_SEED, Corp

log = logging.getLogger(__name__)

wecom_cli = AppGroup("wecom", help="The local WeCom stand-in: run it, fire callbacks at the app.")

DEFAULT_STANDIN = "http://127.0.0.1:5001"


def _default_callback_url(app) -> str:
    return app.config.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/") + "/wecom/callback"


def _standin_kwargs(app, callback_url: str | None) -> dict:
    cfg = app.config
    return {"token": cfg["WECOM_TOKEN"], "aes_key": cfg["WECOM_AES_KEY"], "corp_id": cfg["WECOM_CORP_ID"],
            "agent_id": cfg["WECOM_AGENT_ID"], "callback_url": callback_url}


def demo_corp(app) -> Corp:
    """The stand-in's corp: the demo chain's staff and customers, so callbacks match the seeded data."""
    from demo.data import demo_corp_seed

    cfg = app.config
    seed = demo_corp_seed()
    seed.setdefault("tag_groups", DEMO_SEED.get("tag_groups", []))
    return Corp.from_dict(seed, corp_id=cfg["WECOM_CORP_ID"], secret=cfg["WECOM_SECRET"],
                          agent_id=cfg["WECOM_AGENT_ID"])


def _port_from_config(app, default: int = 5001) -> int:
    parts = urlsplit(app.config.get("WECOM_API_BASE") or "")
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return parts.port
    return default


def start_embedded_standin(app, port: int | None = None, callback_url: str | None = None):
    """Run the stand-in with the demo corp in a background thread (demo mode only); returns the server."""
    from wecom_standin.runner import StandinServer

    if not app.config.get("DEMO"):
        raise RuntimeError("the embedded WeCom stand-in runs in demo mode only")
    port = port or _port_from_config(app)
    server = StandinServer(demo_corp(app), port=port,
                           **_standin_kwargs(app, callback_url or _default_callback_url(app))).start()
    log.info("local WeCom stand-in on %s (callbacks to %s)", server.base_url, server.callback_url)
    return server


@wecom_cli.command("standin")
@click.option("--port", type=int, default=None, help="default: the port of WECOM_API_BASE, else 5001")
@click.option("--callback-url", default=None, help="where to POST callbacks (default PUBLIC_BASE_URL/wecom/callback)")
def standin(port, callback_url):
    """Run the local WeCom stand-in in the foreground with a small demo corp."""
    from werkzeug.serving import run_simple

    from wecom_standin.runner import RedactingRequestHandler
    from wecom_standin.server import create_standin_app

    app = current_app._get_current_object()
    port = port or _port_from_config(app)
    callback_url = callback_url or _default_callback_url(app)
    standin_app = create_standin_app(demo_corp(app), **_standin_kwargs(app, callback_url))
    click.echo(f"WeCom stand-in: http://127.0.0.1:{port}/cgi-bin/  callbacks → {callback_url}")
    click.echo(f"corp {app.config['WECOM_CORP_ID']}, members: {', '.join(DEMO_SEED['members'])}")
    run_simple("127.0.0.1", port, standin_app, threaded=True, use_reloader=False,
               request_handler=RedactingRequestHandler)


@wecom_cli.group("fire")
def fire():
    """Make the running stand-in fire a callback at the app."""


def _control(standin_url: str, action: str, payload: dict) -> None:
    url = standin_url.rstrip("/").removesuffix("/cgi-bin") + f"/_standin/{action}"
    try:
        res = requests.post(url, json={k: v for k, v in payload.items() if v not in (None, "")}, timeout=30)
    except requests.RequestException as exc:
        raise click.ClickException(f"the stand-in at {standin_url} is not reachable ({type(exc).__name__}); "
                                   "start it with `flask --app app wecom standin`") from None
    click.echo(json.dumps(res.json(), ensure_ascii=False, indent=2))
    if res.status_code != 200:
        raise SystemExit(1)


_standin_opt = click.option("--standin", default=DEFAULT_STANDIN, show_default=True, help="the stand-in's root URL")
_repeat_opt = click.option("--repeat", type=int, default=1, show_default=True, help="post it this many times")


def _add_command(name: str, control: str, doc: str) -> None:
    """`fire add-contact` and `fire add-half-contact` take the same options and differ only in the event."""

    @fire.command(name, help=doc)
    @click.option("--guide", required=True, help="the member's userid")
    @click.option("--customer", default=None, help="external_userid (new random one when omitted)")
    @click.option("--name", default=None)
    @click.option("--state", default=None, help="the 联系我 / acquisition-link state")
    @_repeat_opt
    @_standin_opt
    def command(guide, customer, name, state, repeat, standin):
        _control(standin, control, {"userid": guide, "external_userid": customer, "name": name,
                                    "state": state, "repeat": repeat})


_add_command("add-contact", "add_contact", "A customer adds a guide (add_external_contact with a WelcomeCode).")
_add_command("add-half-contact", "add_half_contact",
             "A customer adds a guide who accepts without verification (add_half_external_contact).")


@fire.command("del-contact")
@click.option("--guide", required=True)
@click.option("--customer", required=True)
@_repeat_opt
@_standin_opt
def fire_del_contact(guide, customer, repeat, standin):
    """The customer deleted the guide (del_external_contact)."""
    _control(standin, "del_contact", {"userid": guide, "external_userid": customer, "repeat": repeat})


@fire.command("del-follow-user")
@click.option("--guide", required=True)
@click.option("--customer", required=True)
@_repeat_opt
@_standin_opt
def fire_del_follow_user(guide, customer, repeat, standin):
    """The guide deleted the customer (del_follow_user)."""
    _control(standin, "del_follow_user", {"userid": guide, "external_userid": customer, "repeat": repeat})


@fire.command("edit-contact")
@click.option("--guide", required=True)
@click.option("--customer", required=True)
@click.option("--remark", default=None)
@_repeat_opt
@_standin_opt
def fire_edit_contact(guide, customer, remark, repeat, standin):
    """The guide edited the customer's remark (edit_external_contact)."""
    _control(standin, "edit_contact", {"userid": guide, "external_userid": customer, "remark": remark,
                                       "repeat": repeat})


@fire.command("text")
@click.option("--guide", required=True)
@click.argument("content")
@_repeat_opt
@_standin_opt
def fire_text(guide, content, repeat, standin):
    """The guide sends a text message to the app."""
    _control(standin, "text_message", {"userid": guide, "content": content, "repeat": repeat})


@fire.command("tag-change")
@click.option("--id", "tag_id", default=None)
@click.option("--tag-type", type=click.Choice(["tag", "tag_group"]), default="tag")
@click.option("--change-type", type=click.Choice(["create", "update", "delete", "shuffle"]), default="update")
@_standin_opt
def fire_tag_change(tag_id, tag_type, change_type, standin):
    """A corp tag changed (change_external_tag)."""
    _control(standin, "tag_change", {"id": tag_id, "tag_type": tag_type, "change_type": change_type})
