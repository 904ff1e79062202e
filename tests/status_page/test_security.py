"""Security of the status page: read-only by default, actions need the operator token AND a
same-origin, CSRF-protected JSON POST; loopback bind by default; DNS-rebinding Host names
refused. Requests go over real HTTP to a real server on a pipeline-fed store."""
import http.client
import json
import time
from pathlib import Path

import pytest

from sen.errors import SenError
from sen.gateway.key_store import KeyStore
from sen.gateway.status_page import StatusPageSettings, scene, start
from sen.gateway.status_page.settings import from_table

from .conftest import TOKEN, free_port


@pytest.fixture
def site(tmp_path):
    now = time.time()
    sc = scene.Scene(now, days=0.3)
    scene.feed(tmp_path, sc.frames(), sc.keys)
    rec = tmp_path / "records"
    rec.mkdir()
    scene.make_record(rec, 101, "pm25", 1, b0=-2.0, b1=0.8, valid_from="2026-01-01T00:00:00Z", status="draft")
    from sen.gateway.store import connect
    con = connect(tmp_path / "gateway.db")
    con.execute("INSERT INTO outbox(name, cursor, sent) VALUES ('mqtt', (SELECT MAX(id) FROM readings), 10)")
    con.close()
    srv = start(StatusPageSettings(port=0, token=TOKEN), tmp_path / "gateway.db", nodes=scene.NODES,
                records_dir=rec, key_file=tmp_path / "keys.json")
    srv.dir = tmp_path
    yield srv
    srv.stop()


class Client:
    def __init__(self, srv):
        self.port = srv.port
        self.host = f"127.0.0.1:{srv.port}"

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Host": self.host}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def csrf(self):
        _, headers, _ = self.req("GET", "/")
        cookie = headers["Set-Cookie"].split(";")[0]
        return cookie, cookie.split("=", 1)[1]

    def action(self, name, body, token=TOKEN, csrf=True, origin="same", ctype="application/json", extra=None):
        h = {"Content-Type": ctype}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if csrf:
            cookie, value = self.csrf()
            h["Cookie"] = cookie
            h["X-Sen-CSRF"] = value if csrf is True else csrf
        if origin == "same":
            h["Origin"] = f"http://{self.host}"
        elif origin:
            h["Origin"] = origin
        h.update(extra or {})
        status, _, data = self.req("POST", f"/api/actions/{name}", json.dumps(body).encode(), h)
        return status, json.loads(data)


def cursor(srv):
    from sen.gateway.store import connect
    con = connect(srv.dir / "gateway.db", readonly=True)
    try:
        return con.execute("SELECT cursor FROM outbox WHERE name='mqtt'").fetchone()[0]
    finally:
        con.close()


def test_reads_need_nothing_but_actions_need_the_token(site):
    c = Client(site)
    assert c.req("GET", "/api/overview")[0] == 200
    before = cursor(site)
    for name, body in (("resend", {"forwarder": "mqtt", "hours": 1}), ("rotate-key", {"node": 101}),
                       ("approve", {"file": "node101-pm25-v1.json", "by": "x"})):
        status, doc = c.action(name, body, token=None)
        assert status == 401, doc
        assert "token" in doc["error"]
        status, doc = c.action(name, body, token="not-the-operator-token-at-all")
        assert status == 401
    assert cursor(site) == before
    assert json.loads(Path(site.dir / "records" / "node101-pm25-v1.json").read_text())["status"] == "draft"


def test_token_is_not_enough_without_same_origin_and_csrf(site):
    c = Client(site)
    before = cursor(site)
    body = {"forwarder": "mqtt", "hours": 1}
    assert c.action("resend", body, csrf=False)[0] == 403                       # no CSRF token at all
    assert c.action("resend", body, csrf="forged.0123456789abcdef")[0] == 403   # header != cookie
    assert c.action("resend", body, origin="http://evil.example")[0] == 403     # cross-site Origin
    assert c.action("resend", body, extra={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert c.action("resend", body, ctype="text/plain")[0] == 415               # what a form could send
    # a cookie the server never signed is refused even when header and cookie agree
    h = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", "Cookie": "sen_csrf=planted.abc",
         "X-Sen-CSRF": "planted.abc", "Origin": f"http://{c.host}"}
    assert c.req("POST", "/api/actions/resend", json.dumps(body).encode(), h)[0] == 403
    assert cursor(site) == before
    # the same request done right goes through
    status, doc = c.action("resend", body)
    assert status == 200, doc
    assert cursor(site) < before and doc["result"]["cursor"] == cursor(site)


def test_actions_change_what_they_say(site):
    c = Client(site)
    # approve: the draft becomes approved, hash unchanged, approver recorded
    path = site.dir / "records" / "node101-pm25-v1.json"
    h0 = json.loads(path.read_text())["hash"]
    status, doc = c.action("approve", {"file": "node101-pm25-v1.json", "by": "Trần Thị Bình"})
    assert status == 200, doc
    rec = json.loads(path.read_text())
    assert rec["status"] == "approved" and rec["approved_by"] == "Trần Thị Bình" and rec["hash"] == h0
    # a path outside the records directory is refused with a one-line reason
    status, doc = c.action("approve", {"file": "../keys.json", "by": "x"})
    assert status == 400 and "record file name" in doc["error"]
    # rotate: a new key in the key file, the node's counter state cleared
    old = KeyStore(site.dir / "keys.json").get(101)
    status, doc = c.action("rotate-key", {"node": 101})
    assert status == 200
    new = KeyStore(site.dir / "keys.json").get(101)
    assert new != old and new.hex() == doc["result"]["key"]
    from sen.gateway.store import connect
    con = connect(site.dir / "gateway.db", readonly=True)
    assert con.execute("SELECT last FROM nodes WHERE node_id=101").fetchone()[0] is None
    con.close()
    # the re-provisioned node starts again at counter 0 with its new key; the page follows it
    from sen.firmware_modules import load
    from sen.gateway.rx_meta import RxMeta
    fm = load("frame")
    f = fm.Framer(101, new).encode(0, fm.UP_BOOT, [(0, [(5, 33, 0), (7, 190, 0)])])
    res = scene.feed(site.dir, [(f, RxMeta("gw-x", time.time(), rssi=-88.8, snr=-3.5))], {101: new})
    assert res["accepted"] == 1
    row = next(n for n in json.loads(c.req("GET", "/api/overview")[2])["nodes"] if n["id"] == 101)
    assert row["counter"] == 0 and row["rssi"] == -88.8 and row["snr"] == -3.5 and row["best_gateway"] == "gw-x"
    # bad input: one clear line
    status, doc = c.action("rotate-key", {"node": "abc"})
    assert status == 400 and "not a number" in doc["error"] and doc["fix"]
    status, doc = c.action("resend", {"forwarder": "nope", "hours": 1})
    assert status == 400 and "no forwarder named" in doc["error"]


def test_read_only_gateway_refuses_every_action(tmp_path):
    sc = scene.Scene(time.time(), days=0.05)
    scene.feed(tmp_path, sc.frames(), sc.keys)
    srv = start(StatusPageSettings(port=0), tmp_path / "gateway.db", key_file=tmp_path / "keys.json")
    try:
        c = Client(srv)
        status, doc = c.action("rotate-key", {"node": 101}, token="anything-at-all-long-enough")
        assert status == 403 and "disabled" in doc["error"]
        assert json.loads(c.req("GET", "/api/session")[2])["actions_enabled"] is False
    finally:
        srv.stop()


def test_methods_hosts_and_headers(site):
    c = Client(site)
    for m in ("PUT", "DELETE", "PATCH"):
        assert c.req(m, "/api/overview")[0] == 405
    status, _, _ = c.req("GET", "/api/overview", headers={"Host": "attacker.example:80"})
    assert status == 403  # DNS rebinding onto a loopback-only page
    assert c.req("GET", "/api/overview", headers={"Host": f"localhost:{c.port}"})[0] == 200
    status, headers, _ = c.req("GET", "/")
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    assert "SameSite=Strict" in headers["Set-Cookie"]
    assert c.req("GET", "/assets/../server.py")[0] == 404
    assert c.req("GET", "/api/node/99999")[0] == 404
    assert c.req("GET", "/api/node/101?window=1y")[0] == 400


def test_binds_to_loopback_unless_configured(tmp_path):
    s = from_table({"port": 0}, tmp_path)
    assert s.bind == "127.0.0.1" and not s.actions_enabled
    sc = scene.Scene(time.time(), days=0.05)
    scene.feed(tmp_path, sc.frames(), sc.keys)
    srv = start(s, tmp_path / "gateway.db")
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.stop()


def test_cross_site_page_in_chromium_cannot_act(site, browser):
    """A hostile page on another origin posts a form and a fetch at the action; nothing changes."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    target = f"http://127.0.0.1:{site.port}/api/actions/resend"
    evil = f"""<!doctype html><form id=f method=POST action="{target}" enctype="text/plain">
<input name='{{"forwarder":"mqtt","hours":5,"x":"' value='"}}'></form>
<script>
fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{forwarder: "mqtt", hours: 5}})}})
  .finally(() => document.getElementById("f").submit());
</script>""".encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(evil)))
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *a):
            pass

    hostile = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    before = cursor(site)
    ctx = browser.new_context()
    try:
        pg = ctx.new_page()
        pg.goto(f"http://127.0.0.1:{site.port}/")  # the victim has the page open (CSRF cookie set)
        responses = []
        pg.on("response", lambda r: responses.append((r.url, r.status)) if "/api/actions/" in r.url else None)
        pg.goto(f"http://localhost:{hostile.server_address[1]}/")
        pg.wait_for_timeout(300)
        pg.wait_for_load_state()
        assert any(s in (401, 403, 415) for _, s in responses), responses
    finally:
        ctx.close()
        hostile.shutdown()
        hostile.server_close()
    assert cursor(site) == before


def test_bad_settings_get_one_line_errors(tmp_path):
    cases = [({"colour": "red"}, "unknown key"), ({"port": 70000}, "not a port"), ({"bind": "my-host"}, "not an IP"),
             ({"token": "short"}, "shorter than 16"), ({"token_file": "missing.token"}, "cannot read"),
             ({"timezone": "Mars/Olympus"}, "not a known time zone"), ({"water_class": "Z"}, "QCVN 08:2023"),
             ({"token": TOKEN, "token_file": "x"}, "both")]
    for table, words in cases:
        with pytest.raises(SenError) as e:
            from_table(table, tmp_path)
        msg = str(e.value)
        assert words in msg and "\n" not in msg and "gateway.toml [status]" in msg, msg
        assert e.value.fix


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket
    sc = scene.Scene(time.time(), days=0.05)
    scene.feed(tmp_path, sc.frames(), sc.keys)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SenError) as e:
            start(StatusPageSettings(port=port), tmp_path / "gateway.db")
    assert f"127.0.0.1:{port}" in str(e.value) and "[status] port" in str(e.value)
    assert free_port() > 0
