"""Prometheus metrics (prometheus_client), served over HTTP at /metrics.

Process-lifetime figures (frames by outcome, latency, rx metadata, downlinks) are client
metrics updated by the service loop. Figures that outlive the process (rejections, nodes,
outboxes) are read from the store at scrape time by a collector, so a restarted gateway
reports the same totals. Each service has its own registry: tests run several in one process.
"""
import threading
from collections import deque

from prometheus_client import (CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics,
                               start_http_server)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sen.errors import SenError
from sen.gateway.store import connect

# The text format would show each counter's creation time as an extra `_created` gauge family.
disable_created_metrics()

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0)
# SX127x: sensitivity is about -137 dBm at SF12/125 kHz; a node next to the gateway reads ~-30.
RSSI_BUCKETS = tuple(range(-135, -25, 10))
# LoRa demodulates down to -7.5 dB (SF7) ... -20 dB (SF12) SNR; above ~+10 dB the estimate saturates.
SNR_BUCKETS = (-20.0, -17.5, -15.0, -12.5, -10.0, -7.5, -5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames = Counter("sen_gateway_frames", "Frames by outcome (accepted, duplicate, rejected and why) since start.",
                              ["outcome", "reason"], registry=r)
        self.latency = Histogram("sen_gateway_ingest_latency_seconds", "Radio IRQ to durable commit in the store.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.rssi = Histogram("sen_gateway_rx_rssi_dbm", "RSSI of every frame a radio received, in dBm.", ["radio"],
                              buckets=RSSI_BUCKETS, registry=r)
        self.snr = Histogram("sen_gateway_rx_snr_db", "SNR of every frame a radio received, in dB.", ["radio"],
                             buckets=SNR_BUCKETS, registry=r)
        self.downlinks = Counter("sen_gateway_downlinks", "ACK and config downlinks sent since start.", registry=r)
        self.adr_changes = Counter("sen_gateway_adr_changes", "Times ADR changed a node's commanded SF or TX "
                                   "back-off, since start.", registry=r)
        self.adr_acks = Counter("sen_gateway_adr_acks", "ACKs that carried a link setting, by whose choice it was: "
                                "central (the ingest's advice), own (this gateway's ADR) or pinned (the operator's SF "
                                "pin), since start.", ["source"], registry=r)
        for source in ("central", "own", "pinned"):
            self.adr_acks.labels(source)  # shown at 0 before the first, so a rate() has a series
        self.resent = Counter("sen_gateway_resent_samples",
                              "Samples re-sent after a lost ACK, stored once, since start.", registry=r)
        ProcessCollector(registry=r)
        self.lock = threading.Lock()
        self.recent_latencies: deque = deque(maxlen=100_000)  # exact percentiles for the benchmark

    def observe_latency(self, s: float):
        self.latency.observe(s)
        with self.lock:
            self.recent_latencies.append(s)

    def observe_rx(self, meta):
        self.rssi.labels(meta.radio).observe(meta.rssi)
        self.snr.labels(meta.radio).observe(meta.snr)

    def count_batch(self, res):
        if res.accepted:
            self.frames.labels("accepted", "").inc(len(res.accepted))
        if res.duplicates:
            self.frames.labels("duplicate", "").inc(res.duplicates)
        if res.resent_samples:
            self.resent.inc(res.resent_samples)
        for reason, n in res.rejections.items():
            self.frames.labels("rejected", str(reason)).inc(n)


class StoreCollector:
    """Figures kept in the store and in the service's parts, read at each scrape."""

    def __init__(self, service):
        self.service = service

    def describe(self):
        return []  # collected lazily: the store may not exist when the registry is built

    def collect(self):
        svc = self.service
        rej = CounterMetricFamily("sen_gateway_rejections", "Frames rejected, by reason, over the store's life.",
                                  labels=["reason"])
        depth = GaugeMetricFamily("sen_gateway_outbox_depth", "Stored readings a forwarder has not sent yet.",
                                  labels=["forwarder"])
        sent = CounterMetricFamily("sen_gateway_outbox_sent", "Readings a forwarder delivered.", labels=["forwarder"])
        dropped = CounterMetricFamily("sen_gateway_outbox_dropped",
                                      "Readings dropped because a forwarder lagged past outbox.max_pending.",
                                      labels=["forwarder"])
        node = ["node"]
        seen = GaugeMetricFamily("sen_gateway_node_last_seen_timestamp_seconds",
                                 "Unix time of the node's last accepted frame.", labels=node)
        rssi = GaugeMetricFamily("sen_gateway_node_rssi_dbm", "RSSI of the node's last frame, in dBm.", labels=node)
        snr = GaugeMetricFamily("sen_gateway_node_snr_db", "SNR of the node's last frame, in dB.", labels=node)
        batt = GaugeMetricFamily("sen_gateway_node_battery_volts", "The node's last reported battery voltage.",
                                 labels=node)
        reboots = CounterMetricFamily("sen_gateway_node_reboots", "Reboots the node's frames showed.", labels=node)
        lost = CounterMetricFamily("sen_gateway_node_lost_frames", "Frames missing from the node's counter sequence.",
                                   labels=node)
        resent = CounterMetricFamily("sen_gateway_node_resent_samples",
                                     "The node's samples re-sent after a lost ACK, stored once.", labels=node)
        con = connect(svc.cfg.store_path, readonly=True)
        try:
            for reason, n in con.execute("SELECT reason, count FROM rejections ORDER BY reason"):
                rej.add_metric([reason], n)
            head = con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
            for name, cur, n_sent, n_dropped in con.execute("SELECT name, cursor, sent, dropped FROM outbox"):
                depth.add_metric([name], head - cur)
                sent.add_metric([name], n_sent)
                dropped.add_metric([name], n_dropped)
            for n, t, r, s, b, boots, n_lost, n_resent in con.execute(
                    "SELECT node_id, last_seen, rssi, snr, battery, reboots, lost, COALESCE(resent_samples, 0)"
                    " FROM nodes WHERE last_seen IS NOT NULL"):
                label = [str(n)]
                seen.add_metric(label, t)
                if r is not None:
                    rssi.add_metric(label, r)
                if s is not None:
                    snr.add_metric(label, s)
                if b is not None:
                    batt.add_metric(label, b)
                reboots.add_metric(label, boots or 0)
                lost.add_metric(label, n_lost or 0)
                resent.add_metric(label, n_resent)
            per_sf = dict(con.execute("SELECT commanded_sf, COUNT(*) FROM link_history WHERE commanded_sf IS NOT NULL"
                                      " GROUP BY commanded_sf"))
        finally:
            con.close()
        up = GaugeMetricFamily("sen_gateway_forwarder_up", "1 while the forwarder's last attempt succeeded.",
                               labels=["forwarder"])
        for r in svc.runners:
            up.add_metric([r.name], int(r.healthy))
        received = CounterMetricFamily("sen_gateway_radio_received", "Frames the radio backend received since start.",
                                       labels=["radio"])
        reinits = CounterMetricFamily("sen_gateway_radio_reinits",
                                      "Radio re-initialisations after a silence longer than watchdog_s.",
                                      labels=["radio"])
        radio_up = GaugeMetricFamily("sen_gateway_radio_up", "1 while the radio backend runs; 0 while it is down "
                                     "and being retried.", labels=["radio"])
        overlong = CounterMetricFamily("sen_gateway_radio_overlong_lines",
                                       "Over-long lines from a serial receiver board, counted and dropped.",
                                       labels=["radio"])
        missed = CounterMetricFamily("sen_gateway_radio_ack_window_missed",
                                     "ACKs not sent because they could no longer start inside the node's receive "
                                     "window (single-channel radios; concentrators count it per gateway).",
                                     labels=["radio"])
        for b in svc.backends.values():
            missed.add_metric([b.name], getattr(b, "ack_window_missed", 0))
            received.add_metric([b.name], b.received)
            reinits.add_metric([b.name], b.reinits)
            radio_up.add_metric([b.name], int(getattr(b, "up", True)))
            overlong.add_metric([b.name], getattr(b, "over_long_lines", 0))
        adr = GaugeMetricFamily("sen_gateway_adr_nodes", "Nodes by the SF ADR last commanded them.", labels=["sf"])
        for sf in range(7, 13):
            adr.add_metric([str(sf)], per_sf.get(sf, 0))
        yield from (rej, depth, sent, dropped, seen, rssi, snr, batt, reboots, lost, resent, up, received, reinits,
                    radio_up, overlong, missed, adr)
        states = [b.status() for b in svc.backends.values() if hasattr(b, "status")]
        if states:
            yield from concentrator_families(states)


STAT_KEYS = {"rxnb": "rx_packets", "rxok": "rx_crc_ok", "rxfw": "rx_forwarded", "dwnb": "downlinks_received",
             "txnb": "tx_emitted"}


def concentrator_families(states):
    """semtech_udp backends' gateways: online, duty used, Sen's counts per gateway, and each
    gateway's last `stat` report (its own counters as it sent them, and position)."""
    gw = ["radio", "gateway"]
    online = GaugeMetricFamily("sen_gateway_concentrator_online",
                               "1 while the concentrator gateway sends PULL_DATA (offline_after_s).", labels=gw)
    duty = GaugeMetricFamily("sen_gateway_concentrator_duty_cycle_used",
                             "Share of the last hour the gateway spent sending Sen's ACKs.", labels=gw)
    packets = CounterMetricFamily("sen_gateway_concentrator_packets",
                                  "Datagrams and packets from/to the gateway by kind (rxpk, sen, lorawan, crc_bad, "
                                  "tx_ok, tx_error with its TX_ACK error...).", labels=gw + ["what", "error"])
    stats = {k: GaugeMetricFamily(f"sen_gateway_concentrator_stat_{name}",
                                  f"The gateway's own '{k}' in its last stat report.", labels=gw)
             for k, name in STAT_KEYS.items()}
    lat = GaugeMetricFamily("sen_gateway_concentrator_latitude", "Latitude in the gateway's stat report.", labels=gw)
    lon = GaugeMetricFamily("sen_gateway_concentrator_longitude", "Longitude in the gateway's stat report.", labels=gw)
    events = CounterMetricFamily("sen_gateway_concentrator_events",
                                 "Backend events: bad datagrams by reason, ACK outcomes.", labels=["radio", "what"])
    for st in states:
        for g in st["gateways"]:
            lab = [st["radio"], g["eui"]]
            online.add_metric(lab, int(g["online"]))
            duty.add_metric(lab, g["duty_cycle_used"])
            for k, v in sorted(g["counts"].items()):
                what, _, detail = k.partition(":")
                packets.add_metric(lab + [what, detail], v)
            stat = g["stat"] or {}
            for k, fam in stats.items():
                if isinstance(stat.get(k), (int, float)) and not isinstance(stat.get(k), bool):
                    fam.add_metric(lab, stat[k])
            if isinstance(stat.get("lati"), (int, float)) and isinstance(stat.get("long"), (int, float)):
                lat.add_metric(lab, stat["lati"])
                lon.add_metric(lab, stat["long"])
        for k, v in sorted(st["counts"].items()):
            events.add_metric([st["radio"], k], v)
    yield from (online, duty, packets, *stats.values(), lat, lon, events)


def serve_metrics(service, bind: str, port: int):
    service.metrics.registry.register(StoreCollector(service))
    try:
        server, _ = start_http_server(port, addr=bind, registry=service.metrics.registry)
    except OSError as exc:
        raise SenError(f"{service.cfg.path}: metrics.port {port} on {bind} cannot be served ({exc.strerror})",
                       "choose a free port under [metrics] (or stop what holds this one)") from None
    service.metrics_port = server.server_address[1]
    return server
