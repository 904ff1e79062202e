"""The central ingest's ADR advice as this gateway last heard it (sen/adr_advice.py): the
uplink publisher's MQTT thread writes it, ACK composition (gateway/ack.py) reads it.

Only the latest valid advice per node is kept, in memory: it is retained on the broker, so a
restarted gateway has all of it again as soon as it subscribes.
"""
import logging
import threading
import time

from sen import adr_advice

log = logging.getLogger("sen.gateway.adr")


class CentralAdvice:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_node: dict[int, adr_advice.Advice] = {}
        self.received = 0
        self.refused = 0

    def on_message(self, topic: str, payload: bytes):
        """One message from <prefix>/adr/+. Never raises: a bad message is dropped with one
        warning naming the topic and the problem, and the node's earlier advice stays."""
        try:
            if not payload:
                # the ingest withdrew it (an empty retained message deletes the retained one)
                node = adr_advice.node_of_topic(topic)
                with self._lock:
                    self._by_node.pop(node, None)
                return
            advice = adr_advice.decode(topic, payload)
        except adr_advice.BadAdvice as exc:
            self.refused += 1
            log.warning("central ADR advice on %s dropped: %s", topic, exc)
            return
        except Exception as exc:  # whatever it is, it must not take the MQTT thread down
            self.refused += 1
            log.warning("central ADR advice on %s dropped: %s: %s", topic, type(exc).__name__, exc)
            return
        with self._lock:
            self._by_node[advice.node] = advice
            self.received += 1

    def put(self, advice: adr_advice.Advice):
        with self._lock:
            self._by_node[advice.node] = advice

    def get(self, node_id: int) -> adr_advice.Advice | None:
        with self._lock:
            return self._by_node.get(node_id)

    def fresh(self, node_id: int, max_age_s: float, now: float | None = None) -> adr_advice.Advice | None:
        """The node's advice if computed less than max_age_s ago (by the ingest's clock, which
        like the gateway's must be NTP-synchronised: the ACK's TIME relies on it too)."""
        a = self.get(node_id)
        if a is None or (time.time() if now is None else now) - a.computed >= max_age_s:
            return None
        return a

    def __len__(self):
        with self._lock:
            return len(self._by_node)
