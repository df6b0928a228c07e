"""Settings read once from the environment (and an optional `.env`).

`load_settings()` returns a plain dict that `create_app()` copies into `app.config`; tests pass overrides
through `create_app(overrides)`. Outside demo mode every WeCom setting must be present and well-formed:
`check_settings()` names the first one that is not, so start-up fails with one clear line.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = ROOT / "instance"

WECOM_DEFAULT_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
WECOM_DEFAULT_OAUTH_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
# wx.config needs jweixin; wx.agentConfig (what a sidebar uses) needs jwxwork after it.
WECOM_DEFAULT_JSSDK_URLS = ("https://res.wx.qq.com/open/js/jweixin-1.2.0.js",
                            "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js")

# Demo credentials for the local WeCom stand-in. They are public on purpose: they protect nothing.
DEMO_WECOM = {
    "WECOM_CORP_ID": "ww0000demo0000corp",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_SECRET": "demo-secret-for-the-local-standin",
    "WECOM_TOKEN": "demotoken",
    "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECOM_API_BASE": "http://127.0.0.1:5001/cgi-bin/",
}

# The orders API's key in demo mode when INGEST_HMAC_KEY is unset: public on purpose, it protects nothing.
DEMO_INGEST_KEY = "demo-ingest-key-for-local-tests"

WECOM_KEYS = ("WECOM_CORP_ID", "WECOM_AGENT_ID", "WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY", "WECOM_API_BASE")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(environ: dict | None = None) -> dict:
    if environ is None:
        load_dotenv(ROOT / ".env", override=False)
        environ = os.environ
    env = {k: v for k, v in environ.items() if v != ""}
    # The embedded default (no DATABASE_URL) is a demo; a deployment that names its database is not,
    # unless it asks for demo mode explicitly.
    demo = _flag(env.get("DEMO"), default="DATABASE_URL" not in env)
    settings = {
        "DEMO": demo,
        "DATABASE_URL": env.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'guide.db'}"),
        "REDIS_URL": env.get("REDIS_URL"),
        "SECRET_KEY": env.get("SECRET_KEY"),
        "APP_TIMEZONE": env.get("APP_TIMEZONE", "Asia/Shanghai"),
        "WELCOME_TEXT": env.get(
            "WELCOME_TEXT",
            "您好{name}，我是{guide}，您的专属育儿顾问～宝宝喂养、用品选择、门店活动都可以随时问我哦！",
        ),
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{env.get('PORT', '5000')}"),
        "QUEUE_MODE": env.get("QUEUE_MODE"),  # "rq" | "inline"; derived below when unset
        "INGEST_HMAC_KEY": env.get("INGEST_HMAC_KEY"),  # orders API; demo mode falls back to DEMO_INGEST_KEY
        "ATTRIBUTION_MODE": env.get("ATTRIBUTION_MODE", "binding"),  # binding | last_touch (orders/attribution.py)
        "ATTRIBUTION_WINDOW_DAYS": env.get("ATTRIBUTION_WINDOW_DAYS", "30"),
        "TASK_RULES": env.get("TASK_RULES"),  # rule parameters: JSON, or a JSON/YAML file (tasks/settings.py)
        "RECOMMEND_RULES": env.get("RECOMMEND_RULES"),  # a chain's own stage rules (default recommend/rules.json)
        # "off": the callback inbox's insert does not wait for its WAL flush (PostgreSQL only; see
        # docs/callbacks.md for what a database crash can then lose). Everything else stays durable.
        "CALLBACK_SYNC_COMMIT": env.get("CALLBACK_SYNC_COMMIT", "on").strip().lower(),
        # "off": suggestions ignore what sends of each script led to (knowledge/prior.py, docs/suggestions.md).
        "SUGGEST_CONVERSION_PRIOR": env.get("SUGGEST_CONVERSION_PRIOR", "on").strip().lower(),
        # "off": suggestions use the scripts' words only, no sentence vectors (knowledge/semantic.py).
        "SUGGEST_SEMANTIC": env.get("SUGGEST_SEMANTIC", "on").strip().lower(),
        # The sidebar: WeCom's OAuth2 authorize page and the JS-SDK files the WeCom webview loads.
        "WECOM_OAUTH_URL": env.get("WECOM_OAUTH_URL", WECOM_DEFAULT_OAUTH_URL),
        "WECOM_JSSDK_URLS": env.get("WECOM_JSSDK_URLS", " ".join(WECOM_DEFAULT_JSSDK_URLS)).split(),
    }
    for key in WECOM_KEYS:
        settings[key] = env.get(key, DEMO_WECOM[key] if demo else None)
    if settings["WECOM_API_BASE"] is None:
        settings["WECOM_API_BASE"] = WECOM_DEFAULT_API_BASE
    if demo and not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = "demo-only-secret-key"
    return settings


def check_settings(settings: dict) -> None:
    """Raise ConfigError naming the first missing or malformed setting."""
    try:
        ZoneInfo(settings["APP_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"APP_TIMEZONE is not a known time zone: {settings['APP_TIMEZONE']!r}") from None
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", settings["DATABASE_URL"]):
        raise ConfigError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
    if settings.get("CALLBACK_SYNC_COMMIT", "on") not in ("on", "off"):
        raise ConfigError("CALLBACK_SYNC_COMMIT must be on or off")
    if settings.get("SUGGEST_CONVERSION_PRIOR", "on") not in ("on", "off"):
        raise ConfigError("SUGGEST_CONVERSION_PRIOR must be on or off")
    if settings.get("SUGGEST_SEMANTIC", "on") not in ("on", "off"):
        raise ConfigError("SUGGEST_SEMANTIC must be on or off")
    if settings.get("ATTRIBUTION_MODE", "binding") not in ("binding", "last_touch"):
        raise ConfigError("ATTRIBUTION_MODE must be binding or last_touch")
    if not re.fullmatch(r"[0-9]{1,3}", str(settings.get("ATTRIBUTION_WINDOW_DAYS", "30"))) \
            or not 1 <= int(settings.get("ATTRIBUTION_WINDOW_DAYS", "30")) <= 365:
        raise ConfigError("ATTRIBUTION_WINDOW_DAYS must be a whole number of days from 1 to 365")
    if settings.get("INGEST_HMAC_KEY") is not None and len(settings["INGEST_HMAC_KEY"]) < 16:
        raise ConfigError("INGEST_HMAC_KEY is shorter than 16 characters")
    if settings["DEMO"]:
        return
    for key in WECOM_KEYS:
        if not settings.get(key):
            raise ConfigError(f"{key} is not set (required outside demo mode)")
    if not re.fullmatch(r"[A-Za-z0-9]{43}", settings["WECOM_AES_KEY"]):
        raise ConfigError("WECOM_AES_KEY must be the 43-character EncodingAESKey from the WeCom console")
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", settings["WECOM_TOKEN"]):
        raise ConfigError("WECOM_TOKEN must be 1-32 letters or digits")
    if not settings["WECOM_AGENT_ID"].isdigit():
        raise ConfigError("WECOM_AGENT_ID must be the numeric AgentId of the app")
    if not re.match(r"^https?://", settings["WECOM_API_BASE"]):
        raise ConfigError("WECOM_API_BASE must be an http(s) URL")
    if not settings["SECRET_KEY"] or len(settings["SECRET_KEY"]) < 16:
        raise ConfigError("SECRET_KEY is not set or shorter than 16 characters")
