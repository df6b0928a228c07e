"""A local stand-in for WeCom (企业微信): the APIs this project calls, its callbacks, and control endpoints.

    from wecom_standin import Corp, StandinServer
    server = StandinServer(Corp.from_dict(seed, corp_id=..., secret=...), token=..., aes_key=...).start()
    server.base_url   # http://127.0.0.1:PORT/cgi-bin/  -> app.config["WECOM_API_BASE"]
"""
from wecom_standin.corp import DEMO_SEED, Corp
from wecom_standin.runner import StandinServer
from wecom_standin.server import create_standin_app, fire_callback

__all__ = ["Corp", "DEMO_SEED", "StandinServer", "create_standin_app", "fire_callback"]
