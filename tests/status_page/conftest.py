"""Status-page rigs: a real gateway service (InjectBackend radio, real forwarders to local HTTP
receivers) fed with frames from the firmware encoder, the status page started the way
`sen gateway run` starts it, and headless Chromium from Debian driven by Playwright."""
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sen.gateway.status_page import scene

TOKEN = "sen-test-operator-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A local HTTP upstream that accepts every POST (an NGSI-LD broker stand-in) and counts bodies."""

    def __init__(self):
        self.bodies = []
        rx = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                rx.bodies.append(json.loads(self.rfile.read(n) or b"null"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class GatewayRig:
    def __init__(self, tmp: Path, days: float = 7.0):
        from sen.gateway.config import GatewayConfig, RadioConfig
        from sen.gateway.forwarders.ngsi_ld import NgsiLdForwarder
        from sen.gateway.forwarders.sensorthings import SensorThingsForwarder
        from sen.gateway.key_store import KeyStore
        from sen.gateway.radio.base import InjectBackend
        from sen.gateway.service import GatewayService
        from sen.gateway.status_page import start_for_gateway

        self.tmp = tmp
        self.now = time.time()
        self.scene = scene.Scene(self.now, days=days)
        self.items = self.scene.frames()
        keys = KeyStore(tmp / "keys.json", create=True)
        self.scene.write_keys(keys)
        self.records = tmp / "records"
        self.records.mkdir()
        scene.make_record(self.records, 101, "pm25", 1, b0=-2.0, b1=0.8, valid_from="2026-01-01T00:00:00Z")
        scene.make_record(self.records, 101, "pm25", 2, b0=-1.0, b1=0.78, valid_from="2026-11-01T00:00:00Z",
                          status="draft", passes=False)
        (tmp / "operator.token").write_text(TOKEN + "\n")
        self.receiver = Receiver()
        self.cfg = GatewayConfig(path=tmp / "gateway.toml", gateway_id="gw-danang", data_dir=tmp / "data",
                                 key_file=tmp / "keys.json", nodes=dict(scene.NODES), fsync=False,
                                 calibration_dir=self.records,
                                 status={"port": 0, "token_file": "operator.token"})
        self.radio = InjectBackend(RadioConfig("emulated", "r0"), "gw-danang", None)
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: this forwarder keeps failing
        self.svc = GatewayService(self.cfg, backends=[self.radio],
                                  forwarders=[NgsiLdForwarder(self.receiver.url, scene.NODES),
                                              SensorThingsForwarder(dead, scene.NODES)])
        self.radio.on_frame = self.svc.on_frame
        self.thread = threading.Thread(target=self.svc.run, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()
        self.inject(self.items)
        self.wait_frames(self.scene.accepted_frames)
        # `sen gateway run` starts the page itself when gateway.toml has [status]; use that one
        self.own_page = getattr(self.svc, "status_server", None) is None
        self.page = self.svc.status_server if not self.own_page else start_for_gateway(
            self.cfg, runners={r.name: r for r in self.svc.runners}, keys=self.svc.keys)
        self.url = self.page.url

    def inject(self, items):
        for f, m in items:
            self.svc.on_frame(f, m)

    def q(self, sql, *args):
        from sen.gateway.store import connect
        c = connect(self.cfg.store_path, readonly=True)
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    def wait_frames(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        got = 0
        while time.monotonic() < deadline:
            got = self.q("SELECT COUNT(*) FROM frames")[0][0]
            if got >= n:
                return got
            time.sleep(0.05)
        raise TimeoutError(f"only {got} of {n} frames stored")

    def stop(self):
        if self.own_page:
            self.page.stop()
        self.svc.stopping.set()
        self.thread.join(30)
        self.receiver.stop()


@pytest.fixture(scope="session")
def gw(tmp_path_factory):
    rig = GatewayRig(tmp_path_factory.mktemp("status_gw"))
    yield rig
    rig.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    pg = ctx.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    yield pg
    ctx.close()


def show(pg, base_url: str, route: str, view: str):
    """Open a view and wait until the app has drawn it from the API."""
    pg.goto(base_url + "#/" + route)
    pg.wait_for_function("v => document.body.dataset.view === v && document.querySelector('#main').dataset.stamp", arg=view)


@pytest.fixture(scope="session")
def shot_dir(tmp_path_factory):
    d = os.environ.get("SEN_SCREENSHOT_DIR")
    p = Path(d) if d else tmp_path_factory.mktemp("shots")
    p.mkdir(parents=True, exist_ok=True)
    return p


class MediumLink:
    """One node radio and one gateway radio on the emulator's radio medium: the node's SX1276
    model is driven with the register sequence its driver writes, the gateway's emulated
    backend receives at register level and hands the frame, with the RSSI/SNR the medium
    computed, to the running gateway service."""

    def __init__(self, svc, gateway_id="gw-danang", distance_m=(800.0, 200.0), sf=9):
        from sen.emulator.chips.sx1276 import SX1276
        from sen.emulator.clock import VirtualClock
        from sen.emulator.path_loss import LinkBudget
        from sen.emulator.radio_medium import RadioMedium
        from sen.gateway.config import RadioConfig
        from sen.host_tools.emulated_gateway import EmulatedBackend

        self.clock = VirtualClock(start_epoch_s=time.time())
        self.medium = RadioMedium(self.clock, LinkBudget(exponent=3.0), loss_percent=0.0, seed=5)
        self.node = SX1276(self.clock, "node")
        self.medium.attach(self.node, distance_m, 0.0, "node")
        self.sf = sf
        self.gw = EmulatedBackend(RadioConfig("emulated", "medium0", sf=sf, options={"position": [0.0, 0.0]}),
                                  gateway_id, svc.on_frame, self.medium).start()

    def _w(self, addr, *values):
        self.node.transfer(bytes([addr | 0x80]) + bytes(values))

    def send(self, payload: bytes):
        from sen.emulator.chips.sx1276 import FSTEP
        from sen.firmware_modules import load
        lag = time.time() - self.clock.epoch_s()  # keep the virtual world at wall-clock time
        if lag > 0:
            self.clock.advance(int(lag * 1e6))
        frf = int(round(921.4e6 / FSTEP))
        w = self._w
        w(0x01, 0x80)                                   # sleep, LoRa mode
        w(0x06, (frf >> 16) & 0xFF, (frf >> 8) & 0xFF, frf & 0xFF)
        w(0x1D, (7 << 4) | (1 << 1))                    # BW 125 kHz, CR 4/5, explicit header
        w(0x1E, (self.sf << 4) | 0x04)                  # SF, CRC on
        w(0x26, 0x04)
        w(0x20, 0, 8)                                   # preamble 8
        w(0x39, 0x12)                                   # private sync word
        w(0x09, 0x8E)
        w(0x01, 0x81)                                   # standby
        w(0x0E, 0x00)
        w(0x0D, 0x00)
        w(0x00, *payload)
        w(0x22, len(payload))
        w(0x40, 0x40)
        w(0x12, 0xFF)
        w(0x01, 0x83)                                   # TX
        self.clock.advance(load("airtime").time_on_air_us(len(payload), self.sf, 125000) + 1000)

    def stop(self):
        self.gw.stop()
