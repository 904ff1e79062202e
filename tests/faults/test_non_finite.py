"""Class 6: non-finite numbers from a radio backend (an RSSI or SNR of inf/nan) are clamped
at the backend boundary: the store, the raw log and /metrics hold finite numbers only."""
import math
import re

from sen.bench.gateway_receivers import free_port
from sen.gateway.raw_log import iter_log
from sen.gateway.store import connect
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import Gateway, http_get


def test_inf_and_nan_rssi_snr_are_clamped_at_the_backend(tmp_path):
    fleet = Fleet(4, seed=3)
    port = free_port()
    gw = Gateway(tmp_path, fleet, metrics_port=port)
    bad = [(math.inf, math.nan), (-math.inf, math.inf), (math.nan, -math.inf), (1e308, -1e308)]
    items = list(fleet.frames(4))
    for (f, m), (rssi, snr) in zip(items, bad):
        gw.radio.inject(f, rssi, snr, m.time)
    keys = [(n, 0) for n in fleet.nodes]
    try:
        assert gw.wait_stored(keys)
        text = http_get(f"http://127.0.0.1:{port}/metrics")
    finally:
        gw.stop()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in samples:
        value = line.rsplit(" ", 1)[1]
        assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?", value), line
    assert sum("node_rssi_dbm" in s for s in samples) == 4 and sum("node_snr_db" in s for s in samples) == 4
    c = connect(gw.cfg.store_path, readonly=True)
    rows = c.execute("SELECT rssi, snr FROM frames UNION ALL SELECT rssi, snr FROM nodes").fetchall()
    c.close()
    assert len(rows) == 8 and all(v is not None and math.isfinite(v) for r in rows for v in r), rows
    metas = [m for _, _, _, m in iter_log(gw.cfg.raw_log_path)]
    assert len(metas) == 4 and all(math.isfinite(m.rssi) and math.isfinite(m.snr) for m in metas)
