"""What goes into an ACK (docs/frame-format.md sections 5 and 9): TIME and RANGE always, the
operator's pending change, and, for a node under ADR, its link setting (sf and
tx_backoff_db together: they state the setting, so a lost or repeated ACK cannot drift it).
"""
from sen.adr import ALL_SFS, AdrParams
from sen.gateway.counter_state import NodeCounters
from sen.gateway.downlink_encode import encode_downlink
from sen.gateway.link_history import LinkHistory

RANGE_LEN = 16


def range_bits(state: NodeCounters | None, c32: int) -> int:
    """Bit i set <=> uplink c32-1-i is stored. The counter state's window (64) covers the 16."""
    if state is None:
        return 0
    bits = 0
    for i in range(RANGE_LEN):
        if c32 - 1 - i >= 0 and state.seen(c32 - 1 - i):
            bits |= 1 << i
    return bits


def hearable_sfs(backends) -> tuple[int, ...]:
    """Every SF one of this gateway's radios demodulates: ADR never commands another."""
    sfs = set()
    for b in backends:
        hear = getattr(b, "hearable_sfs", None)
        sfs.update(hear() if hear else ALL_SFS)
    return tuple(sorted(sfs)) or ALL_SFS


class AckComposer:
    def __init__(self, cfg, store, backends, metrics=None):
        self.store = store
        self.links = LinkHistory(store.con)
        self.enabled = bool(getattr(cfg, "adr_enabled", True))
        self.margin_db = float(getattr(cfg, "adr_margin_db", 5.0))
        self.hysteresis_db = float(getattr(cfg, "adr_hysteresis_db", 1.0))
        self.sfs = hearable_sfs(backends)
        self.metrics = metrics

    def link_config(self, node_id: int) -> dict:
        """ADR's sf and tx_backoff_db for this ACK, or {} while the history is short."""
        if not self.enabled:
            return {}
        link, last = self.links.load(node_id)
        pin = self.links.pinned_sf(node_id)
        # a pin this gateway's radios cannot hear would cut the node off: ADR decides instead
        params = AdrParams(self.margin_db, self.hysteresis_db, self.sfs, pin if pin in self.sfs else None)
        before = link.changes
        setting = link.decide(params)
        if setting is None:
            return {}
        self.links.save(node_id, link, last)
        if link.changes != before and self.metrics is not None:
            self.metrics.adr_changes.inc()
        return {"sf": setting.sf, "tx_backoff_db": setting.tx_backoff_db}

    def compose(self, acc, key: bytes, state: NodeCounters | None) -> bytes:
        c32 = acc.counter & 0xFFFFFFFF  # the store keeps a re-provisioning epoch above the 32 bits
        config = dict(self.store.pending_config(acc.node_id) or {})
        config.update(self.link_config(acc.node_id))
        # TIME: the uplink's end by the gateway's clock, which the node sets its own by
        return encode_downlink(acc.node_id, key, c32, config or None, time_s=int(acc.meta.time),
                               range_bits=range_bits(state, c32))
