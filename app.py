"""Assembles the service: settings, extensions, blueprints, CLI groups. Nothing else happens at import."""
from __future__ import annotations

import logging
import os
import sys

from flask import Flask

from config import ConfigError, check_settings, load_settings
from core.db import db
from core.queue import jobs
from core.redis_store import rstore
from core.sessions import LazySessionInterface


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    settings = load_settings()
    if overrides:
        settings.update(overrides)
    check_settings(settings)
    _check_rule_settings(settings)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # WeCom callbacks are small; bigger bodies get 413
    # The sidebar's session cookie: signed (SECRET_KEY), HttpOnly, SameSite; Secure behind HTTPS.
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings["PUBLIC_BASE_URL"].startswith("https://"))
    if settings["DATABASE_URL"].startswith("sqlite"):
        os.makedirs(app.instance_path, exist_ok=True)

    app.session_interface = LazySessionInterface()
    db.init_app(app)
    rstore.init_app(app)
    jobs.init_app(app)

    from bot.tasks import relay_inbox
    from customers.tasks import relay_erasure_cleanups

    jobs.add_feeder("callback inbox", relay_inbox)
    jobs.add_feeder("erasure clean-ups", relay_erasure_cleanups)

    from bot.cli import bot_cli, worker_command
    from bot.views import bp as wecom_bp
    from core.cli import db_cli
    from customers.cli import customers_cli
    from customers.views import bp as customers_admin_bp
    from core.health import bp as health_bp
    from coupons.cli import coupons_cli
    from coupons.views import bp as coupons_bp
    from demo.cli import demo_cli
    from guides.cli import guides_cli
    from guides.views import bp as guides_admin_bp
    from imports.cli import data_cli
    from knowledge.cli import knowledge_cli
    from knowledge.views import bp as knowledge_api_bp
    from orders.cli import commission_cli, orders_cli
    from orders.views import bp as orders_api_bp
    from recommend.cli import recommend_cli
    from recommend.views import bp as recommend_api_bp
    from reports.cli import report_cli
    from reports.views import bp as manager_bp
    from scheduler.cli import scheduler_command
    from sidebar.cli import sidebar_cli
    from sidebar.views import api as sidebar_api_bp
    from sidebar.views import pages as sidebar_pages_bp
    from tasks.cli import tasks_cli
    from tasks.views import bp as tasks_api_bp
    from tracking.views import bp as tracking_bp
    from wecom_standin.cli import wecom_cli

    app.register_blueprint(health_bp)
    app.register_blueprint(wecom_bp)
    app.register_blueprint(knowledge_api_bp)
    app.register_blueprint(tasks_api_bp)
    app.register_blueprint(sidebar_pages_bp)
    app.register_blueprint(sidebar_api_bp)
    app.register_blueprint(coupons_bp)
    app.register_blueprint(orders_api_bp)
    app.register_blueprint(manager_bp)
    app.register_blueprint(tracking_bp)
    app.register_blueprint(guides_admin_bp)
    app.register_blueprint(customers_admin_bp)
    app.register_blueprint(recommend_api_bp)

    app.cli.add_command(db_cli)
    app.cli.add_command(data_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(bot_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(wecom_cli)
    app.cli.add_command(knowledge_cli)
    app.cli.add_command(tasks_cli)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(sidebar_cli)
    app.cli.add_command(coupons_cli)
    app.cli.add_command(commission_cli)
    app.cli.add_command(orders_cli)
    app.cli.add_command(report_cli)
    app.cli.add_command(guides_cli)
    app.cli.add_command(customers_cli)
    app.cli.add_command(recommend_cli)
    return app


def _check_rule_settings(settings: dict) -> None:
    from tasks.settings import RuleSettingsError, load_rule_settings

    try:
        load_rule_settings(settings.get("TASK_RULES"))
    except RuleSettingsError as exc:
        raise ConfigError(f"TASK_RULES: {exc}") from None


def _build_module_app() -> Flask:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return create_app()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


app = _build_module_app()

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    if rstore.embedded:
        jobs.start_embedded_worker(app)
    if app.config["DEMO"] and app.config["WECOM_API_BASE"].startswith("http://127.0.0.1"):
        from wecom_standin.cli import start_embedded_standin

        start_embedded_standin(app)
    if rstore.embedded or os.environ.get("EMBEDDED_SCHEDULER"):
        # The embedded default has no separate scheduler process (a deployment runs `flask scheduler`).
        from scheduler.runner import start as start_scheduler

        start_scheduler(app, blocking=False)
    app.run(host="127.0.0.1", port=port, threaded=True)
