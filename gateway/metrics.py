"""Prometheus text-format metrics, served over HTTP at /metrics."""
import threading
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sen.errors import SenError
from sen.gateway.store import connect

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0)


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency_buckets = [0] * len(BUCKETS)
        self.latency_count = 0
        self.latency_sum = 0.0
        self.frames = Counter()
        self.downlinks = 0
        self.resent_samples = 0
        self.recent_latencies: deque = deque(maxlen=100_000)  # exact percentiles for the benchmark

    def observe_latency(self, s: float):
        with self.lock:
            self.latency_count += 1
            self.latency_sum += s
            self.recent_latencies.append(s)
            for i, b in enumerate(BUCKETS):
                if s <= b:
                    self.latency_buckets[i] += 1

    def count_batch(self, res):
        with self.lock:
            self.frames["accepted"] += len(res.accepted)
            self.frames["duplicate"] += res.duplicates
            self.resent_samples += res.resent_samples
            for reason, n in res.rejections.items():
                self.frames[f"rejected:{reason}"] += n


def render(service) -> str:
    m = service.metrics
    lines = ["# HELP sen_gateway_frames_total Frames by outcome since start.", "# TYPE sen_gateway_frames_total counter"]
    with m.lock:
        for k, v in sorted(m.frames.items()):
            outcome, _, reason = k.partition(":")
            label = f'outcome="{outcome}"' + (f',reason="{reason}"' if reason else "")
            lines.append(f"sen_gateway_frames_total{{{label}}} {v}")
        lines += ["# HELP sen_gateway_ingest_latency_seconds Radio IRQ to durable commit.",
                  "# TYPE sen_gateway_ingest_latency_seconds histogram"]
        for b, n in zip(BUCKETS, m.latency_buckets):
            lines.append(f'sen_gateway_ingest_latency_seconds_bucket{{le="{b}"}} {n}')
        lines.append(f'sen_gateway_ingest_latency_seconds_bucket{{le="+Inf"}} {m.latency_count}')
        lines.append(f"sen_gateway_ingest_latency_seconds_sum {m.latency_sum:.6f}")
        lines.append(f"sen_gateway_ingest_latency_seconds_count {m.latency_count}")
        lines.append(f"sen_gateway_downlinks_total {m.downlinks}")
        lines += ["# HELP sen_gateway_resent_samples_total Samples re-sent after a lost ACK, stored once, since start.",
                  "# TYPE sen_gateway_resent_samples_total counter",
                  f"sen_gateway_resent_samples_total {m.resent_samples}"]
    con = connect(service.cfg.store_path, readonly=True)
    try:
        lines += ["# TYPE sen_gateway_rejections_total counter"]
        for reason, n in con.execute("SELECT reason, count FROM rejections ORDER BY reason"):
            lines.append(f'sen_gateway_rejections_total{{reason="{reason}"}} {n}')
        head = con.execute("SELECT COALESCE(MAX(id), 0) FROM readings").fetchone()[0]
        lines += ["# TYPE sen_gateway_outbox_depth gauge"]
        for name, cur, sent, dropped in con.execute("SELECT name, cursor, sent, dropped FROM outbox"):
            lines.append(f'sen_gateway_outbox_depth{{forwarder="{name}"}} {head - cur}')
            lines.append(f'sen_gateway_outbox_sent_total{{forwarder="{name}"}} {sent}')
            lines.append(f'sen_gateway_outbox_dropped_total{{forwarder="{name}"}} {dropped}')
        lines += ["# TYPE sen_gateway_node_last_seen_seconds gauge"]
        for node, seen, rssi, snr, batt, reboots, lost, resent in con.execute(
                "SELECT node_id, last_seen, rssi, snr, battery, reboots, lost, COALESCE(resent_samples, 0) FROM nodes"
                " WHERE last_seen IS NOT NULL"):
            lines.append(f'sen_gateway_node_last_seen_seconds{{node="{node}"}} {seen}')
            if rssi is not None:  # SQLite keeps a nan as NULL; Prometheus has no None
                lines.append(f'sen_gateway_node_rssi_dbm{{node="{node}"}} {rssi}')
            if snr is not None:
                lines.append(f'sen_gateway_node_snr_db{{node="{node}"}} {snr}')
            if batt is not None:
                lines.append(f'sen_gateway_node_battery_volts{{node="{node}"}} {batt}')
            lines.append(f'sen_gateway_node_reboots_total{{node="{node}"}} {reboots or 0}')
            lines.append(f'sen_gateway_node_lost_frames_total{{node="{node}"}} {lost or 0}')
            lines.append(f'sen_gateway_node_resent_samples_total{{node="{node}"}} {resent}')
    finally:
        con.close()
    for r in service.runners:
        lines.append(f'sen_gateway_forwarder_up{{forwarder="{r.name}"}} {int(r.healthy)}')
    for b in service.backends.values():
        lines.append(f'sen_gateway_radio_up{{radio="{b.name}"}} {int(getattr(b, "up", True))}')
        lines.append(f'sen_gateway_radio_received_total{{radio="{b.name}"}} {b.received}')
        lines.append(f'sen_gateway_radio_reinits_total{{radio="{b.name}"}} {b.reinits}')
        lines.append(f'sen_gateway_radio_overlong_lines_total{{radio="{b.name}"}} {getattr(b, "over_long_lines", 0)}')
    return "\n".join(lines) + "\n"


def serve_metrics(service, bind: str, port: int):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(service).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    try:
        server = ThreadingHTTPServer((bind, port), Handler)
    except OSError as exc:
        raise SenError(f"{service.cfg.path}: metrics.port {port} on {bind} cannot be served ({exc.strerror})",
                       "choose a free port under [metrics] (or stop what holds this one)") from None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    service.metrics_port = server.server_address[1]
    return server
