"""Per-node link history for ADR, kept in the gateway's SQLite store (docs/frame-format.md
section 9). The service feeds it every accepted NEW frame; ACK composition (gateway/ack.py)
asks it for the setting to command. Pure ADR lives in sen/adr.py; this is its persistence.
"""
import json
import time

from sen.adr import LinkFrame, LinkSetting, NodeLink, link_stats


def _load_frames(text: str | None) -> list[LinkFrame]:
    return [LinkFrame(*row) for row in json.loads(text or "[]")]


def _dump_frames(frames: list[LinkFrame]) -> str:
    return json.dumps([[f.snr, f.rssi, f.sf, f.lost_before, f.tx_backoff_db] for f in frames])


def best_copy(con, node_id: int, counter: int) -> tuple[float, float, int] | None:
    """(snr, rssi, sf) of the strongest copy stored so far: the first copy's row in frames,
    the others' in rx (another radio or gateway)."""
    row = con.execute(
        "SELECT snr, rssi, sf FROM (SELECT snr, rssi, sf FROM frames WHERE node_id=?1 AND counter=?2"
        " UNION ALL SELECT snr, rssi, sf FROM rx WHERE node_id=?1 AND counter=?2)"
        " WHERE snr IS NOT NULL ORDER BY snr DESC LIMIT 1", (node_id, counter)).fetchone()
    return None if row is None else (float(row[0]), float(row[1]), int(row[2]))


class LinkHistory:
    def __init__(self, con):
        self.con = con

    def load(self, node_id: int) -> tuple[NodeLink, int | None]:
        row = self.con.execute("SELECT frames, commanded_sf, commanded_backoff, commanded_from_sf, changes,"
                               " last_counter FROM link_history WHERE node_id=?", (node_id,)).fetchone()
        if row is None:
            return NodeLink(), None
        frames, csf, cb, cfrom, changes, last = row
        link = NodeLink(_load_frames(frames), None if csf is None else LinkSetting(csf, cb), changes or 0, cfrom)
        return link, last

    def save(self, node_id: int, link: NodeLink, last_counter: int | None, source: str | None = None):
        """source: who chose the commanded setting (an ACK's); None keeps the stored one."""
        c = link.commanded
        self.con.execute(
            "INSERT INTO link_history(node_id, last_counter, frames, commanded_sf, commanded_backoff,"
            " commanded_from_sf, changes, updated, source) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(node_id) DO UPDATE SET"
            " last_counter=excluded.last_counter, frames=excluded.frames, commanded_sf=excluded.commanded_sf,"
            " commanded_backoff=excluded.commanded_backoff, commanded_from_sf=excluded.commanded_from_sf,"
            " changes=excluded.changes, updated=excluded.updated, source=COALESCE(excluded.source, source)",
            (node_id, last_counter, _dump_frames(link.frames), None if c is None else c.sf,
             None if c is None else c.tx_backoff_db, link.commanded_from_sf, link.changes, time.time(), source))

    def observe(self, accepted) -> int:
        """Add the NEW frames of a processed batch (Accepted records); returns how many
        histories were reset because a node backed off on its own. Each node's history is
        read and written once per batch, not once per frame (a JSON round trip per frame
        cost the service 4/5 of its throughput in `sen bench gateway`)."""
        resets = 0
        touched: dict[int, list] = {}  # node -> [link, last counter], in batch order
        # IMMEDIATE: a deferred transaction that reads first cannot upgrade to a write while a
        # reader (status page, forwarders) holds the database, and SQLite fails it at once
        self.con.execute("BEGIN IMMEDIATE")
        try:
            for acc in accepted:
                if acc.kind != "new":
                    continue  # a late frame is older than the history's newest
                best = best_copy(self.con, acc.node_id, acc.counter)
                if best is None:
                    best = (acc.meta.snr, acc.meta.rssi, acc.meta.sf)
                entry = touched.get(acc.node_id)
                if entry is None:
                    entry = touched[acc.node_id] = list(self.load(acc.node_id))
                link, last = entry
                c32 = acc.counter & 0xFFFFFFFF
                # a BOOT jump skips a counter block the node never sent: not a loss
                lost = 0 if last is None or getattr(acc, "boot", False) else max(0, c32 - last - 1)
                resets += link.observe(LinkFrame(best[0], best[1], best[2], lost))
                entry[1] = c32
            for node, (link, last) in touched.items():
                self.save(node, link, last)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return resets

    def pinned_sf(self, node_id: int) -> int | None:
        row = self.con.execute("SELECT sf FROM link_pin WHERE node_id=?", (node_id,)).fetchone()
        return None if row is None else int(row[0])

    def set_pin(self, node_id: int, sf: int | None):
        if sf is None:
            self.con.execute("DELETE FROM link_pin WHERE node_id=?", (node_id,))
        else:
            self.con.execute("INSERT INTO link_pin VALUES (?,?) ON CONFLICT(node_id) DO UPDATE SET sf=excluded.sf",
                             (node_id, sf))

    def summary(self) -> dict[int, dict]:
        """Per node, for `sen gateway status` and /metrics."""
        pins = dict(self.con.execute("SELECT node_id, sf FROM link_pin"))
        # a store the upgraded gateway has not opened yet (status reads it read-only) has no source
        source = "source" if any(r[1] == "source" for r in self.con.execute("PRAGMA table_info(link_history)")) \
            else "NULL"
        out = {}
        for node, frames, csf, cb, changes, src in self.con.execute(
                "SELECT node_id, frames, commanded_sf, commanded_backoff, changes, " + source +
                " FROM link_history ORDER BY node_id"):
            fr = _load_frames(frames)
            st = link_stats(fr)
            out[node] = {"sf": fr[-1].sf if fr else None, "commanded_sf": csf, "tx_backoff_db": cb,
                         "pinned_sf": pins.get(node), "snr_max": st.snr_max, "snr_spread_db": st.snr_spread_db,
                         "loss_pct": st.loss_pct, "frames": st.frames, "adr_changes": changes or 0,
                         "source": src}
        return out
