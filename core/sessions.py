"""Flask's signed-cookie sessions, without building a signer for requests that carry no session cookie.

Flask builds an itsdangerous serializer (key derivation included) at the start of every request once a
SECRET_KEY is set; WeCom's callbacks never carry a cookie, and on that hot path the signer was a
measurable part of the request's cost. Sessions behave exactly as before otherwise.
"""
from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface


class LazySessionInterface(SecureCookieSessionInterface):
    def open_session(self, app, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
