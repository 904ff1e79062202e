"""ADR across gateways (docs/frame-format.md section 9): per node, the best copy of each of
its last 20 frames over every gateway that heard it (PostgreSQL's rx table holds each copy),
run through sen/adr.py. `sen ingest status` shows it; the ingest publishes it to the gateways
as advice (ingest/adr_publisher.py), which they put in their ACKs.
"""
from sen.adr import HISTORY_LEN, AdrParams, LinkFrame, NodeLink

FLAG_BOOT = 4

# Per node, its newest frames by the frames primary key, stopping at the 21st with a copy:
# the publisher runs this every minute, and a window over the whole frames table (as
# before) costs time in proportion to every frame ever stored (about 3 s against 0.3-0.5 s for
# 2,000 nodes of 300 frames each, same rows).
BEST_COPIES = f"""
SELECT n.node_id, t.counter, t.flags, t.snr, t.rssi, t.sf FROM nodes n
CROSS JOIN LATERAL (
    SELECT f.counter, f.flags, b.snr, b.rssi, b.sf FROM frames f
    JOIN LATERAL (SELECT snr, rssi, sf FROM rx WHERE rx.node_id = f.node_id AND rx.counter = f.counter
                  AND snr IS NOT NULL ORDER BY snr DESC LIMIT 1) b ON true
    WHERE f.node_id = n.node_id ORDER BY f.counter DESC LIMIT {HISTORY_LEN + 1}) t
ORDER BY n.node_id, t.counter
"""


def link_report(con, params: AdrParams = AdrParams()) -> list[dict]:
    """One row per node: its link statistics and the setting ADR would command now. Every
    SF counts as hearable: a city network's concentrators hear SF7-12."""
    by_node: dict[int, list] = {}
    for node, counter, flags, snr, rssi, sf in con.execute(BEST_COPIES).fetchall():
        by_node.setdefault(node, []).append((counter, flags, float(snr), float(rssi), int(sf)))
    out = []
    for node, rows in sorted(by_node.items()):
        link = NodeLink()
        setting = None
        # a 21st, older row only dates the first frame's gap
        prev, rows = (rows[0][0], rows[1:]) if len(rows) > HISTORY_LEN else (None, rows)
        for counter, flags, snr, rssi, sf in rows:
            lost = 0 if prev is None or flags & FLAG_BOOT else max(0, counter - prev - 1)
            link.observe(LinkFrame(snr, rssi, sf, lost))
            # after a reset (the node backed off on its own) this is None again until 4 new
            # frames: advising the setting from before would send the node back to it
            setting = link.decide(params)
            prev = counter
        st = link.stats()
        out.append({"node": node, "sf": link.frames[-1].sf if link.frames else None,
                    "adr_sf": setting.sf if setting else None,
                    "adr_tx_backoff_db": setting.tx_backoff_db if setting else None,
                    "snr_max": st.snr_max, "snr_spread_db": st.snr_spread_db, "loss_pct": st.loss_pct,
                    "frames": st.frames})
    return out
