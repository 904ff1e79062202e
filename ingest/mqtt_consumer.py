"""MQTT 5 shared-subscription consumer: N ingest workers subscribe to
`$share/<group>/<prefix>/uplink/+/+` and the broker splits the records between them.

At-least-once end to end: acknowledgements are manual and sent only after the store has
committed a record, and the session persists (fixed client id, clean_start=False, session
expiry), so records in flight when a worker dies are re-delivered when it comes back,
and records queued while the broker restarts are kept by the broker's persistence.
"""
import logging
import queue
import threading
import time
from dataclasses import dataclass

from paho.mqtt.subscribeoptions import SubscribeOptions

from sen.gateway import uplink_wire as wire
from sen.gateway.uplink_publisher import mqtt5_client, session_properties

log = logging.getLogger("sen.ingest.mqtt")


@dataclass(slots=True)
class Message:
    mid: int
    topic: str
    payload: bytes
    gateway_offset: int
    generation: int  # connection it arrived on; a PUBACK is only valid on that connection
    received: float


def shared_topic(group: str, prefix: str) -> str:
    return f"$share/{group}/{wire.subscription(prefix)}"


class SharedConsumer:
    def __init__(self, host: str, port: int, client_id: str, *, group: str = "sen-ingest", prefix: str = "sen",
                 username: str | None = None, password: str | None = None, tls: bool = False,
                 ca_file: str | None = None, session_expiry_s: int = 86400, receive_maximum: int = 2000,
                 keepalive: int = 30, heartbeat_s: float = 5.0):
        self.topic = shared_topic(group, prefix)
        self.heartbeat_topic = wire.heartbeat_topic(prefix)
        self.client_id = client_id
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._hb_thread = threading.Thread(target=self._heartbeats, name="ingest-heartbeat", daemon=True)
        self.queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker granted the shared subscription
        self.generation = 0
        self.last_error = ""
        self.received = 0
        self.client = mqtt5_client(client_id, username, password, tls, ca_file, manual_ack=True)
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._lock = threading.Lock()
        self._args = (host, port, keepalive)
        self._props = session_properties(session_expiry_s, receive_maximum)

    def start(self):
        host, port, keepalive = self._args
        self.client.connect_async(host, port, keepalive, clean_start=False, properties=self._props)
        self.client.loop_start()
        self._hb_thread.start()
        return self

    def heartbeat(self):
        if self.subscribed.is_set():
            self.client.publish(self.heartbeat_topic, f'{{"worker":"{self.client_id}","t":{time.time():.3f}}}', qos=0)

    def _heartbeats(self):
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.heartbeat()
            except Exception:  # a heartbeat is advisory; the next one follows
                pass

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc.is_failure:
            self.last_error = f"broker refused the connection: {rc}"
            log.warning("ingest consumer: %s", self.last_error)
            return
        with self._lock:
            self.generation += 1
        # Resubscribing on a resumed session is harmless and covers a broker that lost it.
        client.subscribe(self.topic, options=SubscribeOptions(qos=1))
        self.connected.set()
        log.info("ingest consumer connected (session present: %s), subscribed to %s",
                 flags.session_present, self.topic)

    def _on_subscribe(self, client, userdata, mid, reason_codes, props=None):
        if reason_codes and not any(rc.is_failure for rc in reason_codes):
            self.subscribed.set()
            self.heartbeat()  # gateways waiting after a broker restart may publish again
        else:
            self.last_error = f"broker refused the subscription {self.topic}: {reason_codes}"
            log.warning("ingest consumer: %s (check the broker ACL for this user)", self.last_error)

    def _on_disconnect(self, client, userdata, flags, rc, props=None):
        self.connected.clear()
        self.subscribed.clear()
        with self._lock:
            self.generation += 1  # acks for records of the old connection would name stale packet ids

    def _on_message(self, client, userdata, msg):
        offset = -1
        props = getattr(msg, "properties", None)
        for k, v in (getattr(props, "UserProperty", None) or []):
            if k == "raw_offset":
                try:
                    offset = int(v)
                except ValueError:
                    pass
        self.received += 1
        self.queue.put(Message(msg.mid, msg.topic, bytes(msg.payload), offset, self.generation, time.monotonic()))

    def take(self, window_s: float, max_n: int, first_timeout: float = 0.5) -> list[Message]:
        """Block for the first record up to first_timeout, then collect for window_s more
        (the dedupe window: copies from other gateways usually land inside it)."""
        try:
            first = self.queue.get(timeout=first_timeout)
        except queue.Empty:
            return []
        out = [first]
        deadline = time.monotonic() + window_s
        while len(out) < max_n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        return out

    def ack(self, msgs) -> int:
        """PUBACK records that are now stored. Records from an earlier connection are not
        acked: the broker re-delivers them and the store treats them as duplicates."""
        n = 0
        for m in msgs:
            if m.generation == self.generation:
                self.client.ack(m.mid, 1)
                n += 1
        return n

    def stop(self):
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
