"""The app's gate: only the person who started it, from this computer, gets in.

* The server listens on 127.0.0.1 only, and refuses a ``Host`` header other than
  ``127.0.0.1:PORT`` or ``localhost:PORT`` (a DNS-rebinding page cannot borrow the session).
* ``GET /?token=T`` with the random token printed at start sets the session cookie (HttpOnly,
  SameSite=Strict, Path=/) and redirects to ``/`` so the token leaves the address bar; every other
  request without that cookie gets 401.
* A state-changing request (anything but GET/HEAD) must carry ``X-Doorward-CSRF`` equal to the
  per-run CSRF token that the page reads from its own HTML, and an ``Origin``, when sent, that is
  the app's own. A custom header cannot be sent cross-origin without a CORS preflight, which is
  never granted: no response carries an ``Access-Control-Allow-*`` header.
* A WebSocket (live view, issue 17) needs the session cookie, this app's ``Host`` and this app's
  ``Origin`` (a browser always sends one with the handshake, but no CSRF header): another site's
  page cannot open it with the owner's cookie. Refused handshakes get 403.
* Every response says ``Cache-Control: no-store`` (pages, JSON and media all hold plaintext),
  with ``Referrer-Policy: no-referrer``, a strict Content-Security-Policy and no framing.

Wiring (agent.owner.app.server)::

    guard = Guard.new(port)
    app = Guard.wrap(starlette_app)        # pure ASGI middleware around everything
    print(guard.login_url)
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "doorward_owner"
CSRF_HEADER = "x-doorward-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
       "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode("ascii")),
    (b"cross-origin-resource-policy", b"same-origin"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Guard:
    """The run's secrets: ``token`` (in the printed URL), ``session`` (the cookie's value, never
    shown) and ``csrf`` (given to the page in its HTML)."""

    port: int
    token: str = field(default_factory=_token)
    session: str = field(default_factory=_token)
    csrf: str = field(default_factory=_token)

    @property
    def login_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    def origins(self) -> set[str]:
        return {f"http://{h}" for h in self.hosts()}

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind the checks of the module docstring."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "websocket":  # live view (issue 17): cookie and Origin
                refused = self.check_websocket(scope)
                if refused is not None:
                    await send({"type": "websocket.close", "code": 4403, "reason": refused})
                    return
                await app(scope, receive, send)
                return
            if scope["type"] != "http":
                await app(scope, receive, send)  # lifespan
                return
            verdict = self.check(scope)

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message.get("headers", [])
                               if k.lower() not in {h for h, _ in SECURITY_HEADERS}
                               and not k.lower().startswith(b"access-control-")]
                    message["headers"] = headers + SECURITY_HEADERS
                await send(message)

            if verdict is None:
                await app(scope, receive, send_with_headers)
            else:
                await _plain(send_with_headers, *verdict)

        return guarded

    def check(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """None to let the request through, else (status, text, extra headers)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if headers.get("host") not in self.hosts():
            return 400, "this app answers only on 127.0.0.1", []
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [""])[0]
        if method == "GET" and scope["path"] == "/" and given:
            if not hmac.compare_digest(given, self.token):
                return 401, "wrong token: open the address `doorward owner app` printed", []
            cookie = (f"{COOKIE}={self.session}; HttpOnly; SameSite=Strict; Path=/")
            return 303, "signed in", [(b"location", b"/"), (b"set-cookie", cookie.encode())]
        if not self._has_session(headers.get("cookie", "")):
            return 401, ("not signed in: open the address that `doorward owner app` printed "
                         "(with its token) in this browser"), []
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin not in self.origins():
                return 403, "cross-origin request refused", []
            if not hmac.compare_digest(headers.get(CSRF_HEADER, ""), self.csrf):
                return 403, "missing or wrong CSRF token: reload the page", []
        return None

    def check_websocket(self, scope: Scope) -> str | None:
        """None to let a WebSocket through, else why not. A browser sends cookies and Origin
        with the handshake but no CSRF header, so the Origin must be this app's: another site's
        page could otherwise open the socket with the owner's cookie (cross-site hijacking)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if headers.get("host") not in self.hosts():
            return "this app answers only on 127.0.0.1"
        if headers.get("origin") not in self.origins():
            return "cross-origin WebSocket refused"
        if not self._has_session(headers.get("cookie", "")):
            return "not signed in"
        return None

    def _has_session(self, header: str) -> bool:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except Exception:  # a malformed Cookie header is simply no session
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value, self.session)


async def _plain(send: Send, status: int, text: str,
                 extra: list[tuple[bytes, bytes]]) -> None:
    body = (text + "\n").encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
