"""The central ingest's ADR choice, sent to the gateways (docs/frame-format.md section 9).

Every `interval_s` the worker holding a PostgreSQL advisory lock runs link_report (ADR over
the best copy of each frame, from every gateway) and publishes, retained, one advice per node
whose choice changed or was last published more than `refresh_s` ago (sen/adr_advice.py).
Gateways put it in their next ACK. One publisher at a time: two would publish the same
retained values, harmless but twice the traffic; when the leader dies its session ends, the
lock is free, and another worker takes over (and publishes everything once: it does not know
what the old leader sent).
"""
import logging
import threading
import time

import paho.mqtt.client as mqtt

from sen import adr_advice
from sen.adr import AdrParams
from sen.ingest.link_report import link_report
from sen.ingest.pg_leader import run_as_leader

log = logging.getLogger("sen.ingest.adr")
LOCK_KEY = 0x53454E0A  # beside pg_outbox's forwarder keys (0x53454E10 + crc % 100000), never one of them
ACK_TIMEOUT_S = 10.0


def due(report: list[dict], sent: dict, now: float, refresh_s: float) -> list[tuple[dict, tuple | None]]:
    """(report row, (sf, tx_backoff_db)) to publish, or (row, None) to withdraw: a node whose
    history is too short for ADR (new, or reset after it backed off on its own) must not
    keep an older advice on the broker. sent: node -> (setting or None, time published)."""
    out = []
    for row in report:
        node = row["node"]
        setting = None if row["adr_sf"] is None else (row["adr_sf"], row["adr_tx_backoff_db"])
        prev = sent.get(node)
        if setting is None:
            if prev is None or prev[0] is not None:
                out.append((row, None))
        elif prev is None or prev[0] != setting or now - prev[1] >= refresh_s:
            out.append((row, setting))
    return out


class AdvicePublisher:
    """client: a connected paho client (the worker's consumer); connected: set while it is."""

    def __init__(self, dsn: str, client: mqtt.Client, connected: threading.Event, *, prefix: str = "sen",
                 params: AdrParams = AdrParams(), interval_s: float = 60.0, refresh_s: float = 600.0,
                 app: str = "sen-ingest", standby_s: float = 2.0):
        self.dsn = dsn
        self.client = client
        self.connected = connected
        self.prefix = prefix
        self.params = params
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.app = f"{app}:adr"
        self.standby_s = standby_s
        self.sent: dict[int, tuple] = {}
        self.leader = False
        self.published = 0
        self.last_error = ""
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ingest-adr", daemon=True)

    def _run(self):
        run_as_leader(self, LOCK_KEY, self._lead, "ADR advice")

    def _lead(self, con):
        self.sent = {}  # a new leader does not know what the last one published: all go once
        while not self.stop_event.is_set():
            self.publish_once(con)
            self.stop_event.wait(self.interval_s)

    def publish_once(self, con) -> int:
        """One round: returns how many advice messages the broker acknowledged."""
        if not self.connected.is_set():
            return 0  # paho would queue them all; the next round after the reconnect sends what is due
        now = time.time()
        todo = due(link_report(con, self.params), self.sent, now, self.refresh_s)
        infos = []
        for row, setting in todo:
            node = row["node"]
            if setting is None:
                payload = b""  # deletes the retained message
            else:
                try:
                    payload = adr_advice.encode(adr_advice.Advice(node, setting[0], setting[1], row["frames"], now))
                except adr_advice.BadAdvice as exc:  # e.g. a node id no gateway could be told about
                    log.warning("ADR advice for node %s not published: %s", node, exc)
                    self.sent[node] = (setting, now)  # once per refresh, not every round
                    continue
            infos.append((node, setting, self.client.publish(adr_advice.topic(self.prefix, node), payload,
                                                             qos=1, retain=True)))
        deadline = time.monotonic() + ACK_TIMEOUT_S
        done = 0
        for node, setting, info in infos:
            try:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                continue
            if info.is_published():
                self.sent[node] = (setting, now)
                done += 1
        self.published += done
        if done < len(infos):
            log.warning("ADR advice: the broker acknowledged %d of %d messages; the rest go next round", done,
                        len(infos))
        return done

    def start(self):
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
