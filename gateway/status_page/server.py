"""HTTP server for the status page (stdlib ThreadingHTTPServer; one thread per request).

Routes:
  GET  /                          the single-page app (sets the CSRF cookie)
  GET  /assets/<file>             local JS/CSS/SVG, no CDN
  GET  /api/session               {actions_enabled, gateway_id, tz}
  GET  /api/overview | /api/air | /api/water | /api/forwarders
  GET  /api/node/<id>?window=24h|7d
  GET  /api/events                Server-Sent Events: `change` whenever the store changes
  POST /api/actions/approve | rotate-key | resend      token + CSRF (security.py)
  POST /api/calibration/records   an approved calibration record (`sen cal push`); token
"""
import json
import logging
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sen.errors import SenError
from sen.gateway.json_out import dumps
from sen.gateway.status_page import views
from sen.gateway.status_page.actions import Actions
from sen.gateway.status_page.queries import StoreReader
from sen.gateway.status_page.records_view import RecordsView
from sen.gateway.status_page.security import CSRF_COOKIE, Denied, Guard
from sen.gateway.status_page.settings import StatusPageSettings, check_nodes, from_table

log = logging.getLogger("sen.gateway.status_page")
ASSETS = Path(__file__).with_name("assets")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
POLL_S = 0.5
MIN_EVENT_GAP_S = 1.0


class ChangeWatcher(threading.Thread):
    """Polls the store's version; SSE handlers wait on `cond` for a new `seq`."""

    def __init__(self, ctx: views.Context, stop: threading.Event):
        super().__init__(name="status-watch", daemon=True)
        self.ctx, self.stop = ctx, stop
        self.cond = threading.Condition()
        self.seq = 0
        self._last_fwd = 0.0

    def run(self):
        last = None
        while not self.stop.is_set():
            try:
                v = self.ctx.reader.version()
                now = time.time()
                if now - self._last_fwd > 5.0:  # keep throughput history even when nobody looks
                    self._last_fwd = now
                    for ob in self.ctx.reader.outboxes():
                        self.ctx.throughput.observe(ob["name"], ob["sent"] or 0, now)
            except Exception as exc:  # store busy or briefly unavailable: try again
                log.debug("watcher: %s", exc)
                v = last
            if v != last:
                last = v
                with self.cond:
                    self.seq += 1
                    self.cond.notify_all()
            self.stop.wait(POLL_S)
        with self.cond:
            self.cond.notify_all()
        self.ctx.reader.close()


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: StatusPageSettings, ctx: views.Context, actions: Actions):
        self.settings, self.ctx, self.actions = settings, ctx, actions
        self.guard = Guard(settings.token, settings.loopback, settings.allowed_hosts)
        self.stop_event = threading.Event()
        self.watcher = ChangeWatcher(ctx, self.stop_event)
        try:
            super().__init__((settings.bind, settings.port), Handler)
        except OSError as exc:
            raise SenError(f"status page cannot listen on {settings.bind}:{settings.port} ({exc.strerror})",
                           "pick a free port under [status] port in gateway.toml (0 = any)") from None
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.port}/"

    def begin(self) -> "StatusServer":
        self.watcher.start()
        self._thread.start()
        log.info("status page listening", extra={"url": self.url, "actions": self.settings.actions_enabled})
        return self

    def handle_error(self, request, client_address):
        """A client that goes away mid-request is one quiet line, not a traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.info("status page: client %s went away (%s)", client_address[0], type(exc).__name__)
        else:
            log.error("status page: request from %s failed", client_address[0], exc_info=True)

    def stop(self):
        self.stop_event.set()
        self.shutdown()
        self.server_close()
        self._thread.join(2)
        self.watcher.join(2)


def start(settings: StatusPageSettings, db_path, *, nodes: dict | None = None, records_dir=None, key_file=None,
          keys=None, runners: dict | None = None, gateway_id: str = "", on_key_rotated=None,
          on_record_approved=None) -> StatusServer:
    """Start the status page in background threads; returns the server (`.url`, `.stop()`)."""
    reader = StoreReader(db_path)
    records = RecordsView(records_dir)
    ctx = views.Context(reader=reader, settings=settings, nodes=check_nodes(nodes), records=records,
                        runners=dict(runners or {}), gateway_id=gateway_id)
    actions = Actions(db_path, records, key_file=key_file, keys=keys, on_key_rotated=on_key_rotated,
                      on_record_approved=on_record_approved)
    return StatusServer(settings, ctx, actions).begin()


def start_for_gateway(cfg, runners: dict | None = None, keys=None, on_key_rotated=None,
                      on_record_approved=None) -> StatusServer | None:
    """What `sen gateway run` calls: settings from cfg.status ([status] in gateway.toml)."""
    settings = from_table(cfg.status, cfg.path.parent)
    if not settings.enabled:
        return None
    return start(settings, cfg.store_path, nodes=cfg.nodes, records_dir=cfg.calibration_dir, key_file=cfg.key_file,
                 keys=keys, runners=runners, gateway_id=cfg.gateway_id, on_key_rotated=on_key_rotated,
                 on_record_approved=on_record_approved)


NODE_RE = re.compile(r"^/api/node/(\d{1,5})$")
ACTIONS = {"/api/actions/approve": "approve", "/api/actions/rotate-key": "rotate_key",
           "/api/actions/resend": "resend"}
RECORDS = "/api/calibration/records"  # `sen cal push --gateway http://…`: token, no CSRF (security.py)
MAX_RECORD = 4 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    server: StatusServer
    protocol_version = "HTTP/1.1"
    server_version = "sen-status/1"
    timeout = 30  # an idle or stalled client gives its thread back
    sys_version = ""

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)

    # --- responses -------------------------------------------------------------------------
    def _headers(self, status: int, ctype: str, length: int | None, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _json(self, status: int, obj, extra: dict | None = None):
        body = dumps(obj).encode()
        # server time from request start to encoded body (queries + shaping + JSON), for the benchmark
        dur = (time.perf_counter() - getattr(self, "_t0", time.perf_counter())) * 1000
        self._headers(status, "application/json; charset=utf-8", len(body),
                      {"Cache-Control": "no-store", "Server-Timing": f"app;dur={dur:.2f}", **(extra or {})})
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, problem: str, fix: str = "", extra: dict | None = None):
        self._json(status, {"error": problem, "fix": fix}, extra)

    def _file(self, path: Path, extra: dict | None = None):
        data = path.read_bytes()
        self._headers(200, TYPES.get(path.suffix, "application/octet-stream"), len(data),
                      {"Cache-Control": "no-cache", **(extra or {})})
        if self.command != "HEAD":
            self.wfile.write(data)

    # --- GET ---------------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._t0 = time.perf_counter()
        try:
            self.server.guard.check_host(self.headers, self.server.port)
            url = urlsplit(self.path)
            p = url.path
            q = parse_qs(url.query)
            ctx = self.server.ctx
            if p in ("/", "/index.html"):
                extra = {}
                if not self.server.guard.csrf_valid(Guard.cookie_value(self.headers)):
                    extra["Set-Cookie"] = f"{CSRF_COOKIE}={self.server.guard.new_csrf()}; Path=/; SameSite=Strict"
                return self._file(ASSETS / "index.html", extra)
            if p.startswith("/assets/"):
                name = p[len("/assets/"):]
                f = ASSETS / name
                if "/" in name or name.startswith(".") or not f.is_file() or f.suffix not in TYPES:
                    return self._error(404, f"no asset {name!r}")
                return self._file(f)
            if p == "/favicon.ico":
                return self._file(ASSETS / "favicon.svg")
            if p == "/api/session":
                return self._json(200, {"actions_enabled": self.server.settings.actions_enabled,
                                        "gateway_id": ctx.gateway_id, "tz": self.server.settings.timezone})
            if p == "/api/overview":
                return self._json(200, views.overview(ctx))
            if p == "/api/air":
                return self._json(200, views.air(ctx))
            if p == "/api/water":
                return self._json(200, views.water(ctx))
            if p == "/api/forwarders":
                return self._json(200, views.forwarders(ctx))
            if p == "/api/events":
                return self._events()
            m = NODE_RE.match(p)
            if m:
                window = q.get("window", ["24h"])[0]
                if window not in views.WINDOWS:
                    return self._error(400, f"window {window!r} is unknown", "use window=24h or window=7d")
                doc = views.node_detail(ctx, int(m.group(1)), window)
                if doc is None:
                    return self._error(404, f"node {m.group(1)} is not known to this gateway",
                                       "pick a node from the overview")
                return self._json(200, doc)
            return self._error(404, f"no page {p!r}", "start at /")
        except Denied as d:
            return self._error(d.status, d.problem, d.fix)
        except SenError as e:
            return self._error(400, e.problem, e.fix)
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception:
            log.exception("status page error on %s", self.path)
            return self._error(500, "internal error", "see the gateway log")

    def _events(self):
        self.close_connection = True
        self._headers(200, "text/event-stream; charset=utf-8", None,
                      {"Cache-Control": "no-store", "Connection": "close", "X-Accel-Buffering": "no"})
        w = self.server.watcher
        stop = self.server.stop_event
        seen = w.seq
        self.wfile.write(b"retry: 2000\n\n")
        self.wfile.flush()
        last_sent = 0.0
        try:
            while not stop.is_set():
                with w.cond:
                    w.cond.wait_for(lambda: w.seq != seen or stop.is_set(), timeout=15)
                if stop.is_set():
                    break
                if w.seq == seen:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    gap = time.time() - last_sent
                    if gap < MIN_EVENT_GAP_S:  # coalesce bursts of commits into one refresh
                        stop.wait(MIN_EVENT_GAP_S - gap)
                    seen = w.seq
                    last_sent = time.time()
                    self.wfile.write(f"event: change\ndata: {seen}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    # --- POST --------------------------------------------------------------------------------
    def do_POST(self):
        self._t0 = time.perf_counter()
        try:
            self.server.guard.check_host(self.headers, self.server.port)
            p = urlsplit(self.path).path
            raw_length = (self.headers.get("Content-Length") or "0").strip()
            if not raw_length.isdigit():  # "-1" would read to EOF and hold this thread; "abc" is no length
                self.close_connection = True
                return self._error(400, f"Content-Length {raw_length[:20]!r} is not a byte count",
                                   "send a Content-Length of 0..65536 with the JSON body")
            length = int(raw_length)
            if length > (MAX_RECORD if p == RECORDS else 64 * 1024):
                self.close_connection = True
                return self._error(413, "request body too large", "actions take a small JSON object")
            body_bytes = self.rfile.read(length) if length else b""
            if p == RECORDS:
                self.server.guard.check_token(self.headers)
            elif p not in ACTIONS:
                return self._error(404, f"no action {p!r}", "see the status page for the actions it offers")
            else:
                self.server.guard.check_action(self.headers)
            try:
                body = json.loads(body_bytes or b"{}")
            except ValueError:
                return self._error(400, "body is not valid JSON", "send a JSON object")
            if not isinstance(body, dict):
                return self._error(400, "body is not a JSON object", "send a JSON object")
            if p == RECORDS:
                result = self.server.actions.install_record(body, actor=self.client_address[0])
                return self._json(200 if result["already"] else 201, {"ok": True, "result": result})
            result = getattr(self.server.actions, ACTIONS[p])(body, actor=self.client_address[0])
            return self._json(200, {"ok": True, "result": result})
        except Denied as d:
            extra = {"WWW-Authenticate": 'Bearer realm="sen-gateway"'} if d.status == 401 else None
            return self._error(d.status, d.problem, d.fix, extra)
        except SenError as e:
            return self._error(400, e.problem, e.fix)
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception:
            log.exception("status page action error on %s", self.path)
            return self._error(500, "internal error", "see the gateway log")

    def _not_allowed(self):
        self._error(405, f"{self.command} is not allowed", "reads are GET, actions are POST",
                    {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed
