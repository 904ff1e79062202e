"""A real OGC SensorThings v1.1 server for the tests: django-ogc-sensorthings (PyPI) with its own
Django ORM backend on SQLite, run with Django's server on a free loopback port."""
import os
import subprocess
import sys
import time
from pathlib import Path

from sen.bench.gateway_receivers import free_port, wait_port
from sen.gateway.forwarders.http_post import request_json

REPO = Path(__file__).resolve().parents[3]


class StaServer:
    def __init__(self, tmp: Path, slow_answer_s: float = 0.0, data_array: bool = True):
        self.dir = Path(tmp) / "sta"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}/sensorthings"
        self.url = f"{self.root}/v1.1"
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.gateway.sta_server.settings",
                        STA_DB=str(self.dir / "sta.db"), STA_URL=self.root, PYTHONPATH=str(REPO),
                        STA_SLOW_ANSWER_S=str(slow_answer_s), STA_DATA_ARRAY="1" if data_array else "0")
        self.proc = None
        self.log = self.dir / "server.log"

    def start(self) -> "StaServer":
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=self.env, cwd=REPO, check=True)
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.port}",
                                      "--noreload", "--skip-checks"], env=self.env, cwd=REPO,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        wait_port(self.port, 60)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._log.close()

    def get(self, path: str):
        return request_json("GET", path if path.startswith("http") else f"{self.url}/{path}", timeout=60,
                            ok_status=(200,))[1]

    def all(self, path: str) -> list:
        """Every entity of a collection, following @iot.nextLink."""
        import urllib.parse
        out, url = [], path if path.startswith("http") else f"{self.url}/{path}"
        while url:
            page = self.get(url)
            out += page.get("value", [])
            nxt = page.get("@iot.nextLink")
            url = urllib.parse.quote(nxt, safe=":/?&=$,'()%@+") if nxt and page.get("value") else None
        return out

    def wait_count(self, n: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        got = -1
        while time.monotonic() < deadline:
            got = self.get("Observations?$count=true&$top=0")["@iot.count"]
            if got >= n:
                return got
            time.sleep(0.3)
        return got
