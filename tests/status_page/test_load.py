"""Ten thousand stored readings per channel: the node page's JSON and its rendering stay
correct (the time it takes is measured by bench/status_page_bench.py, not here)."""
import json
import time
import urllib.request

import numpy as np
import pytest

from sen.gateway.status_page import StatusPageSettings, scene, start
from sen.gateway.store import connect

from .conftest import show

DENSE = {501: {"name": "Trạm thử tải", "kind": "air", "interval_s": 60}}


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    d = tmp_path_factory.mktemp("dense")
    sc = scene.Scene(time.time(), days=7, nodes=DENSE)
    scene.feed(d, sc.frames(), sc.keys)
    srv = start(StatusPageSettings(port=0), d / "gateway.db", nodes=DENSE)
    srv.db = d / "gateway.db"
    yield srv
    srv.stop()


def get(srv, path):
    with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=30) as r:
        return json.loads(r.read()), r.headers


def test_week_of_minute_readings_is_complete_and_faithful(dense):
    doc, headers = get(dense, "/api/node/501?window=7d")
    assert headers["Server-Timing"].startswith("app;dur=")
    con = connect(dense.db, readonly=True)
    w = doc["window"]
    assert len(doc["channels"]) == 6
    for ch in doc["channels"]:
        rows = con.execute("SELECT time, value, qflags FROM readings WHERE node_id=501 AND channel=? AND time>=? AND time<=?"
                           " ORDER BY time", (ch["id"], w["t0"], w["t1"])).fetchall()
        s = ch["series"]
        assert len(rows) >= 10_000 and s["n"] == len(rows)
        assert s["downsampled"] and 0 < len(s["t"]) <= 720
        t = np.array([r[0] for r in rows])
        v = np.array([r[1] for r in rows], float)
        # every bucket's mean lies inside its min-max band, and the band matches the data in it
        width = s["bucket_s"]
        for tm, mean, lo, hi in zip(s["t"], s["cal"], s["lo"], s["hi"]):
            assert lo - 1e-6 <= mean <= hi + 1e-6
        b = np.clip(((t - w["t0"]) / ((w["t1"] - w["t0"]) / 720)).astype(int), 0, 719)
        k = b[len(b) // 2]
        sel = v[b == k]
        i = int(np.argmin(np.abs(np.array(s["t"]) - t[b == k].mean())))
        assert s["cal"][i] == pytest.approx(sel.mean(), abs=1e-3)
        assert s["lo"][i] == pytest.approx(sel.min()) and s["hi"][i] == pytest.approx(sel.max())
        assert width > 0
        n_flag = sum(1 for r in rows if r[2])
        assert s["n_flagged"] == n_flag
    con.close()


def test_day_window_sends_every_point(dense):
    doc, _ = get(dense, "/api/node/501?window=24h")
    con = connect(dense.db, readonly=True)
    w = doc["window"]
    pm = next(c for c in doc["channels"] if c["name"] == "pm25")
    rows = con.execute("SELECT time, raw, value FROM readings WHERE node_id=501 AND channel=5 AND time>=? AND time<=?"
                       " ORDER BY time", (w["t0"], w["t1"])).fetchall()
    con.close()
    assert not pm["series"]["downsampled"] and pm["series"]["n"] == len(rows) >= 1400
    assert pm["series"]["cal"] == [r[2] for r in rows]
    assert pm["series"]["t"] == [round(r[0], 1) for r in rows]


def test_browser_renders_the_dense_week(dense, page):
    show(page, dense.url, "node/501/7d", "node")
    assert page.locator("section.card[data-channel]").count() == 6
    legend = page.locator("section.card[data-channel='pm25'] .legend").inner_text()
    con = connect(dense.db, readonly=True)
    doc, _ = get(dense, "/api/node/501?window=7d")
    n = con.execute("SELECT COUNT(*) FROM readings WHERE node_id=501 AND channel=5 AND time>=?", (doc["window"]["t0"],)).fetchone()[0]
    con.close()
    assert f"{n:,}".replace(",", ".") + " điểm" in legend
    assert page.locator("section.card[data-channel='pm25'] path.band").count() == 1
    assert page.errors == []
