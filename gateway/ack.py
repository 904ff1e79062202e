"""What goes into an ACK (docs/frame-format.md sections 5 and 9): TIME and RANGE always, the
operator's pending change, and, for a node under ADR, its link setting (sf and
tx_backoff_db together: they state the setting, so a lost or repeated ACK cannot drift it).

The link setting: an operator's pin first; else the central ingest's advice (every gateway's
copies), when fresh and at an SF this gateway's radios hear; else this gateway's own ADR.
"""
from sen.adr import ALL_SFS, AdrParams, LinkSetting
from sen.gateway.central_adr import CentralAdvice
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
        self.central_enabled = bool(getattr(cfg, "adr_central", True))
        self.central_max_age_s = float(getattr(cfg, "adr_central_max_age_s", 3600.0))
        self.central = CentralAdvice()  # filled by the uplink publisher's subscription (uplink mode)
        self.sfs = hearable_sfs(backends)
        self.metrics = metrics

    def central_advice(self, node_id: int) -> LinkSetting | None:
        if not self.central_enabled:
            return None
        a = self.central.fresh(node_id, self.central_max_age_s)
        # advice for an SF no radio here hears would send the node where this gateway cannot
        # hear it (nor, likely, its next ACK request): own ADR picks among what it hears
        return None if a is None or a.sf not in self.sfs else LinkSetting(a.sf, a.tx_backoff_db)

    def link_config(self, node_id: int) -> dict:
        """The sf and tx_backoff_db for this ACK, or {} while own ADR's history is short and
        there is no central advice."""
        if not self.enabled:
            return {}
        link, last = self.links.load(node_id)
        pin = self.links.pinned_sf(node_id)
        # a pin this gateway's radios cannot hear would cut the node off: ADR decides instead
        pin = pin if pin in self.sfs else None
        # a node that backed off on its own did not hear ACKs at the setting it had: advice
        # computed before that would send it straight back, so own ADR waits for new frames
        advice = None if pin is not None or link.backed_off else self.central_advice(node_id)
        before = link.changes
        if advice is not None:
            # recorded as commanded, so own ADR carries on from it if the advice stops
            setting, source = link.follow(advice), "central"
        else:
            setting = link.decide(AdrParams(self.margin_db, self.hysteresis_db, self.sfs, pin))
            source = "pinned" if pin is not None else "own"
        if setting is None:
            return {}
        self.links.save(node_id, link, last, source)
        if self.metrics is not None:
            self.metrics.adr_acks.labels(source).inc()
            if link.changes != before:
                self.metrics.adr_changes.inc()
        return {"sf": setting.sf, "tx_backoff_db": setting.tx_backoff_db}

    def compose(self, acc, key: bytes, state: NodeCounters | None) -> bytes:
        c32 = acc.counter & 0xFFFFFFFF  # the store keeps a re-provisioning epoch above the 32 bits
        config = dict(self.store.pending_config(acc.node_id) or {})
        config.update(self.link_config(acc.node_id))
        # TIME: the uplink's end by the gateway's clock, which the node sets its own by
        return encode_downlink(acc.node_id, key, c32, config or None, time_s=int(acc.meta.time),
                               range_bits=range_bits(state, c32))
