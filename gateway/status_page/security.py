"""Who may do what. Reading needs nothing; every action needs all of:

1. POST with `Content-Type: application/json` (an HTML form cannot send that cross-site);
2. the operator token in `Authorization: Bearer …` (401 when missing or wrong);
3. a same-origin request: `Origin` (when sent) equal to this server's own origin and
   `Sec-Fetch-Site` (when sent) `same-origin`, plus the double-submit CSRF token: header
   `X-Sen-CSRF` equal to the `sen_csrf` cookie, which the server signs so it cannot be planted
   (403 otherwise).

`POST /api/calibration/records` (for `sen cal push`) needs 1 and 2 and the origin checks of 3,
but no CSRF pair: it is an API for a command-line client, never reached by a cookie alone.

Host names are checked on every request when the page listens on loopback, so a DNS-rebinding
page cannot read it through a name of its own.
"""
import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie

CSRF_COOKIE = "sen_csrf"
CSRF_HEADER = "X-Sen-CSRF"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]", "::1"}


class Denied(Exception):
    def __init__(self, status: int, problem: str, fix: str):
        super().__init__(problem)
        self.status, self.problem, self.fix = status, problem, fix


class Guard:
    def __init__(self, token: str | None, loopback: bool, allowed_hosts: list[str] | None = None):
        self.token = token
        self.loopback = loopback
        self.allowed_hosts = {h.lower() for h in (allowed_hosts or [])}
        self._secret = secrets.token_bytes(32)

    # --- CSRF cookie ---------------------------------------------------------------------
    def new_csrf(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def csrf_valid(self, value: str | None) -> bool:
        if not value or "." not in value:
            return False
        nonce, sig = value.rsplit(".", 1)
        return hmac.compare_digest(sig, self._sign(nonce))

    @staticmethod
    def cookie_value(headers) -> str | None:
        raw = headers.get("Cookie")
        if not raw:
            return None
        c = SimpleCookie()
        try:
            c.load(raw)
        except Exception:
            return None
        m = c.get(CSRF_COOKIE)
        return m.value if m else None

    # --- checks ----------------------------------------------------------------------------
    def check_host(self, headers, port: int):
        host = (headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.allowed_hosts:
            if name not in self.allowed_hosts and host not in self.allowed_hosts and name not in LOOPBACK_NAMES:
                raise Denied(403, f"host {host!r} is not allowed", "add it to [status] allowed_hosts in gateway.toml")
        elif self.loopback and name not in LOOPBACK_NAMES:
            raise Denied(403, f"host {host!r} is not allowed on a loopback-only page",
                         "open http://127.0.0.1:<port>/ or set [status] allowed_hosts")

    def check_action(self, headers):
        self.check_token(headers)
        sent = headers.get(CSRF_HEADER)
        cookie = self.cookie_value(headers)
        if not sent or not cookie or not hmac.compare_digest(sent, cookie) or not self.csrf_valid(cookie):
            raise Denied(403, "CSRF token missing or wrong", "reload the page and try again")

    def check_token(self, headers):
        """Everything an action needs but the CSRF pair: what an API client (`sen cal push`)
        sends. A bearer token is never sent by a browser on its own, so it needs no CSRF guard."""
        if not self.token:
            raise Denied(403, "operator actions are disabled on this gateway",
                         "set [status] token_file in gateway.toml and restart the gateway")
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Denied(415, "actions take a JSON body", "send Content-Type: application/json")
        auth = headers.get("Authorization") or ""
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not given:
            raise Denied(401, "operator token missing", "enter the operator token (Authorization: Bearer …)")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise Denied(401, "operator token is wrong", "use the token from the gateway's token_file")
        host = (headers.get("Host") or "").strip().lower()
        origin = headers.get("Origin")
        if origin is not None and origin.lower() not in (f"http://{host}", f"https://{host}"):
            raise Denied(403, f"cross-site request from {origin}", "use the page served by this gateway")
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise Denied(403, f"cross-site request (Sec-Fetch-Site: {site})", "use the page served by this gateway")
