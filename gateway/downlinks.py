"""After a batch is stored: an operator's pending node config is checked against what the
node's uplinks now show (config_evidence), and each confirmed uplink gets its ACK through
the radio that heard it. The service loop calls both, in that order, so an applied change
is not sent again in the ACK that follows.
"""
import json
import logging

from sen.gateway import config_evidence
from sen.gateway.counter_state import Kind
from sen.gateway.radio.downlink_plan import NODE_RX_LATE_MS, window_s

log = logging.getLogger("sen.gateway")

# An ACK starts this long after the uplink's end (RxMeta.time), or at once when processing
# took longer, but never after the node's window: the node sleeps its radio for 80 ms after
# TxDone, then listens to 100 ms + rx_late_ms + one header (docs/frame-format.md section 5).
ACK_DELAY_S = 0.1


def check_config_evidence(store, pending: dict, accepted) -> None:
    """Drop from `pending` (node -> (change, stored text)) each change the node's uplinks prove
    applied, and record it so it is no longer sent."""
    for acc in accepted:
        entry = pending.get(acc.node_id)
        if entry is None or acc.kind is not Kind.NEW:  # a late frame shows an older state
            continue
        change, text = entry
        up = config_evidence.observe(store.con, acc.node_id, acc.counter, acc.confirmed)
        if not all(config_evidence.evidence(change, up).values()):
            continue
        seen = {"confirmed": up.confirmed, "calibrating": up.calibrating, "ack_every": up.ack_gap,
                "interval_s": None if up.prev_sample_time is None else round(up.sample_time - up.prev_sample_time, 1)}
        seen = {k: v for k, v in seen.items() if k in change or (k == "calibrating" and "calibration_mode" in change)}
        if store.confirm_pending_config(acc.node_id, text, acc.counter, seen):
            log.info("node-config applied: node=%s change=%s evidence=%s counter=%s; no longer sent in ACKs",
                     acc.node_id, json.dumps(change, sort_keys=True), json.dumps(seen, sort_keys=True), acc.counter)
        pending.pop(acc.node_id, None)


def send_ack(acc, acks, key, backend, state, metrics) -> None:
    """Compose and send the ACK of accepted uplink `acc`; a failure is logged, never raised
    (the frame is stored either way, and the node asks again)."""
    if key is None or backend is None:
        return
    try:
        frame = acks.compose(acc, key, state)
        send = getattr(backend, "send_ack", None)
        if send is not None:  # a concentrator backend picks its gateway and time itself
            send(frame, acc.meta)
        else:
            window = window_s(backend.rc.options.get("node_rx_late_ms", NODE_RX_LATE_MS))
            missed = backend.ack_window_missed
            if not backend.transmit_at(frame, acc.meta.time + ACK_DELAY_S, acc.meta.time + window):
                if missed == 0 or backend.ack_window_missed % 100 == 0:  # a backlog would log one a frame
                    log.warning("radio %s: ACK to node %s not sent, storing took past the node's %.0f ms window "
                                "(%d such ACKs so far); its samples come again in a later frame — a slow disk or "
                                "an overloaded host", backend.name, acc.node_id, window * 1000,
                                backend.ack_window_missed)
                return
        metrics.downlinks.inc()
    except Exception as exc:
        log.warning("ACK to node %s failed: %s", acc.node_id, exc)
