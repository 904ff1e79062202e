"""Gateway side of `uplink` mode: tail the gateway's raw log and publish every record to the
broker (MQTT 5, QoS 1, persistent session), advancing a durable cursor only after the
broker has acknowledged each record.

The raw log is the queue: while the broker is down nothing moves but the cursor's lag, and
after it is back every record from the cursor on goes out again. A crash between publish
and cursor write re-sends a few records; the ingest stores each (node, counter, gateway)
once, so re-sends are harmless.

The gateway service instantiates it like a forwarder (start/stop, .healthy, .lag()):

    pub = UplinkPublisher(cfg.raw_log_path, cfg.gateway_id, host, port, username=..., password=...)
    pub.start() ... pub.stop()
"""
import logging
import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sen import adr_advice
from sen.gateway import raw_log
from sen.gateway.backoff import Backoff
from sen.gateway import uplink_wire as wire

log = logging.getLogger("sen.ingest.uplink")  # the name log filters already use; kept across the move


def read_records(path: Path, start: int, max_records: int, max_bytes: int = 1 << 20):
    """Up to max_records whole records from global offset `start`: [(offset, next_offset, frame, meta)].
    Follows the raw log across rotated segments (sen.gateway.raw_log)."""
    return raw_log.read_batch(Path(path), start, max_records, max_bytes)


class Cursor:
    """The raw-log offset acknowledged by the broker, in a small file replaced atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.value = int(self.path.read_text().strip() or 0)
        except FileNotFoundError:
            self.value = 0
        except ValueError:
            log.warning("uplink cursor %s is unreadable; starting from 0 (re-sends are harmless)", self.path)
            self.value = 0

    def set(self, value: int):
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as f:
            f.write(str(value))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.value = value


def mqtt5_client(client_id: str, username=None, password=None, tls=False, ca_file=None, manual_ack=False):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                    manual_ack=manual_ack)
    if username:
        c.username_pw_set(username, password)
    if tls:
        c.tls_set(ca_certs=ca_file)
    return c


def session_properties(expiry_s: int, receive_maximum: int | None = None) -> Properties:
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = int(expiry_s)
    if receive_maximum:
        p.ReceiveMaximum = int(receive_maximum)
    return p


class UplinkPublisher:
    kind = "uplink"

    def __init__(self, raw_log_path, gateway_id: str, host: str, port: int = 1883, *, cursor_path=None,
                 topic_prefix: str = "sen", username: str | None = None, password: str | None = None,
                 tls: bool = False, ca_file: str | None = None, client_id: str | None = None,
                 batch: int = 500, ack_timeout: float = 10.0, session_expiry_s: int = 86400,
                 idle_s: float = 0.05, backoff_max: float = 30.0, require_ingest: bool = True,
                 ingest_timeout_s: float = 15.0, advice=None):
        """require_ingest: publish only while an ingest worker's heartbeat has been heard on
        this connection (see wire.heartbeat_topic); until then the raw log holds everything.
        advice: a CentralAdvice (gateway/central_adr.py) to keep the ingest's ADR advice in."""
        self.raw_log_path = Path(raw_log_path)
        self.gateway_id = wire.check_gateway_id(gateway_id)
        self.prefix = topic_prefix
        self.cursor = Cursor(cursor_path or self.raw_log_path.with_name(self.raw_log_path.name + ".uplink-cursor"))
        self.batch = batch
        self.ack_timeout = ack_timeout
        self.idle_s = idle_s
        self.backoff_max = backoff_max
        self.backoff = Backoff(0.2, backoff_max, max_doublings=10)
        self.connected = threading.Event()
        self.generation = 0  # bumped on every disconnect: a batch spanning one is re-sent
        self.require_ingest = require_ingest
        self.ingest_timeout_s = ingest_timeout_s
        self.ingest_seen = 0.0
        self.stop_event = threading.Event()
        self.published = 0
        self.failures = 0  # consecutive, for the back-off
        self.failures_total = 0
        self.healthy = True
        self.last_error = ""
        self.client = mqtt5_client(client_id or f"sen-uplink-{gateway_id}", username, password, tls, ca_file)
        self.client.max_inflight_messages_set(max(20, batch))
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_heartbeat
        self.advice = advice
        if advice is not None:
            # its own callback: a retained advice, or a live one (which arrives with retain
            # unset), must never count as a heartbeat
            self.client.message_callback_add(adr_advice.subscription(self.prefix),
                                             lambda c, u, msg: advice.on_message(msg.topic, msg.payload))
        # clean_start=False + session expiry: QoS 1 messages in flight survive a reconnect
        self.client.connect_async(host, port, 30, clean_start=False,
                                  properties=session_properties(session_expiry_s))
        self.thread = threading.Thread(target=self._run, name=f"uplink-{gateway_id}", daemon=True)

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc.is_failure:
            self.last_error = f"broker refused the connection: {rc}"
            log.warning("uplink %s: %s", self.gateway_id, self.last_error)
        else:
            self.ingest_seen = 0.0
            if self.require_ingest:
                client.subscribe(wire.heartbeat_topic(self.prefix), qos=0)
            if self.advice is not None:
                # retained: the broker sends every node's latest advice on each (re)subscribe
                client.subscribe(adr_advice.subscription(self.prefix), qos=1)
            self.connected.set()

    def _on_disconnect(self, client, userdata, flags, rc, props=None):
        self.generation += 1
        self.connected.clear()

    def _on_heartbeat(self, client, userdata, msg):
        if not msg.retain:
            self.ingest_seen = time.monotonic()

    def lag(self) -> int:
        """Raw-log bytes not yet acknowledged by the broker."""
        try:
            return max(0, raw_log.log_end(self.raw_log_path) - self.cursor.value)
        except OSError:
            return 0

    def step(self) -> int:
        """Publish one batch from the cursor and wait for every PUBACK; returns records sent."""
        recs = read_records(self.raw_log_path, self.cursor.value, self.batch)
        if not recs:
            return 0
        if not self.connected.wait(1.0):
            raise ConnectionError("not connected to the broker")
        if self.require_ingest and time.monotonic() - self.ingest_seen > self.ingest_timeout_s:
            raise ConnectionError("no ingest worker heartbeat on this connection yet (holding in the raw log)")
        generation = self.generation
        infos = []
        for offset, _end, frame, meta in recs:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = wire.CONTENT_TYPE
            props.UserProperty = ("raw_offset", str(offset))
            info = self.client.publish(wire.topic_for(self.prefix, self.gateway_id, wire.node_of(frame)),
                                       wire.encode(frame, meta), qos=1, properties=props)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
            infos.append(info)
        deadline = time.monotonic() + self.ack_timeout
        for info in infos:
            try:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                raise ConnectionError(f"publish not queued: {exc}") from None
            if not info.is_published():
                raise TimeoutError("broker did not acknowledge a QoS 1 publish in time")
        if self.generation != generation:
            # PUBACKs after a reconnect may come from a broker that had no subscriber yet
            raise ConnectionError("connection dropped during the batch; re-sending it")
        self.cursor.set(recs[-1][1])
        self.published += len(recs)
        return len(recs)

    def _run(self):
        while not self.stop_event.is_set():
            try:
                n = self.step()
            except Exception as exc:
                self.failures += 1
                self.failures_total += 1
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.failures == 1 or self.failures % 20 == 0:
                    log.warning("uplink %s failing (%s); the raw log keeps everything", self.gateway_id,
                                self.last_error)
                self.stop_event.wait(self.backoff.delay(self.failures))
                continue
            if self.failures:
                log.info("uplink %s recovered after %d failures", self.gateway_id, self.failures)
            self.failures = 0
            self.healthy = True
            if n == 0:
                self.stop_event.wait(self.idle_s)

    def start(self):
        self.client.loop_start()
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
