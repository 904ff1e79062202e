"""OGC SensorThings API forwarder (v1.0 and v1.1), the way servers work:

- Things, Locations, Sensors, ObservedProperties and Datastreams are created once and the
  server assigns their ids (servers such as FROST ignore or refuse client ids). Before creating
  one, the forwarder looks for it by its name (a restart after a crash between the server's
  answer and our note finds it instead of making a second). The ids are remembered in the
  gateway's store (the ingest's PostgreSQL), keyed by server URL, node and channel.
- Observations go in CreateObservations batches (the data-array extension; v1.1 servers list
  it in serverSettings.conformance), or one POST per Observation where a server lacks it.
- Exactly once: SensorThings servers keep whatever is POSTed, so a re-sent batch would be
  stored twice. Each Observation carries the reading's idempotent id in `parameters.senId`.
  A batch that may already have reached the server (the first one after a start, and any
  after a failed send) is checked first: per Datastream, the Observations in the batch's
  phenomenonTime range are read back and rows whose senId is already there are not sent
  again, or PATCHed when the value changed (a recalibration re-sends the corrected reading);
  a rewound outbox (resend, recalibrate) puts its batches in doubt too. The gateway is the
  only writer of its Datastreams, so this is exactly once as long as a request the server is
  still processing has finished by the time of the check (the retry comes after the back-off,
  at least half a second later).
- Readings without a value (sensor missing) are not sent: a Measurement needs a number.
  Quality flags go in resultQuality.
"""
import json
import logging
import re
import urllib.parse

from sen.channels import qflag_names
from sen.gateway.forwarders.base import Forwarder, iso
from sen.gateway.forwarders.http_post import UpstreamError, request_json
from sen.gateway.json_out import dumps

log = logging.getLogger("sen.gateway.forward.sensorthings")

UNITS = {  # unit -> (name, symbol, definition)
    "°C": ("degree Celsius", "°C", "http://qudt.org/vocab/unit/DEG_C"),
    "%": ("percent", "%", "http://qudt.org/vocab/unit/PERCENT"),
    "hPa": ("hectopascal", "hPa", "http://qudt.org/vocab/unit/HectoPA"),
    "µg/m³": ("microgram per cubic metre", "µg/m³", "http://qudt.org/vocab/unit/MicroGM-PER-M3"),
    "V": ("volt", "V", "http://qudt.org/vocab/unit/V"),
    "pH": ("pH", "pH", "http://qudt.org/vocab/unit/PH"),
    "µS/cm": ("microsiemens per centimetre", "µS/cm", "http://qudt.org/vocab/unit/MicroS-PER-CentiM"),
    "NTU": ("nephelometric turbidity unit", "NTU", "http://qudt.org/vocab/unit/NTU"),
    "m": ("metre", "m", "http://qudt.org/vocab/unit/M"),
    "mg/L": ("milligram per litre", "mg/L", "http://qudt.org/vocab/unit/MilliGM-PER-L"),
    "count": ("count", "1", "http://qudt.org/vocab/unit/NUM"),
    "mm": ("millimetre", "mm", "http://qudt.org/vocab/unit/MilliM"),
    "mm/h": ("millimetre per hour", "mm/h", "http://qudt.org/vocab/unit/MilliM-PER-HR"),
    "mV": ("millivolt", "mV", "http://qudt.org/vocab/unit/MilliV"),
    "counts": ("count", "1", "http://qudt.org/vocab/unit/NUM"),
}
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
# Sensor metadata: v1.1 allows application/pdf, SensorML 2.0 or text/html with a URL (v1.0 the
# first two); the frame format document describes what a Sen node measures and how.
SENSOR_DOC = "https://github.com/sen-city/sen/blob/main/docs/frame-format.md"
DATA_ARRAY = "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array"
COMPONENTS = ["phenomenonTime", "result", "resultQuality", "parameters"]
_ID_IN_LINK = re.compile(r"\(([^()]*)\)\s*$")


def thing_name(node_id: int) -> str:
    return f"sen-node-{node_id}"


def datastream_name(node_id: int, channel) -> str:
    return f"sen-node-{node_id}/{channel.name}"


def id_from_link(link: str):
    """The id in a self link such as .../Things('abc') or .../Things(42), typed as the server wrote it."""
    m = _ID_IN_LINK.search(link or "")
    if not m:
        raise UpstreamError(f"server answered without an entity link ({link!r})")
    raw = m.group(1)
    return raw[1:-1].replace("''", "'") if raw.startswith("'") else int(raw)


def ref(entity_id) -> str:
    """An id as it goes in a resource path: numbers bare, strings quoted (OData)."""
    return str(entity_id) if isinstance(entity_id, int) else "'" + str(entity_id).replace("'", "''") + "'"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SensorThingsForwarder(Forwarder):
    kind = "sensorthings"
    batch_readings = 3000

    def __init__(self, url: str, nodes: dict | None = None, gateway_location=None, version: str | None = None,
                 timeout: float = 30.0, sensor_doc: str = SENSOR_DOC):
        base = url.rstrip("/")
        m = re.search(r"/(v1\.[01])$", base)
        self.version = m.group(1) if m else (version or "v1.1")
        self.base = base if m else f"{base}/{self.version}"
        self.nodes = nodes or {}
        self.gateway_location = gateway_location
        self.timeout = timeout
        self.sensor_doc = sensor_doc
        self.ids: dict[str, object] = {}  # key -> server id, cache of what the store remembers
        self.data_array: bool | None = None  # CreateObservations supported? None: not yet known
        self.in_doubt = True  # the last batch before a start or a failure may have arrived
        self.skipped_present = 0  # rows found already on the server when in doubt (for reports)
        self.updated = 0  # of those, rows whose value had changed (recalibrated): PATCHed

    def resending(self):
        self.in_doubt = True

    # --- ids the server assigned ---------------------------------------------------------
    def _key(self, *parts) -> str:
        return "|".join([self.base, *map(str, parts)])

    def _recall(self, key: str):
        if key in self.ids:
            return self.ids[key]
        if self.memory is not None:
            got = self.memory.recall(key)
            if got is not None:
                self.ids[key] = json.loads(got)
                return self.ids[key]
        return None

    def _remember(self, key: str, entity_id):
        self.ids[key] = entity_id
        if self.memory is not None:
            self.memory.remember(key, dumps(entity_id))

    def _get(self, url: str):
        return request_json("GET", url, timeout=self.timeout, ok_status=(200,))[1]

    def _find(self, collection_url: str, name: str):
        q = urllib.parse.urlencode({"$filter": f"name eq {_lit(name)}", "$select": "id"}, quote_via=urllib.parse.quote)
        found = (self._get(f"{collection_url}?{q}") or {}).get("value") or []
        return found[0]["@iot.id"] if found else None

    def _create(self, collection: str, body: dict):
        _, _, headers = request_json("POST", f"{self.base}/{collection}", body, timeout=self.timeout,
                                     ok_status=(200, 201))
        return id_from_link(headers.get("Location"))

    def _ensure(self, key: str, find_url: str, name: str, collection: str, body: dict):
        got = self._recall(key)
        if got is None:
            got = self._find(find_url, name)
            if got is None:
                got = self._create(collection, body)
                log.info("sensorthings: created %s %s", collection, name)
            self._remember(key, got)
        return got

    def _thing(self, node_id: int):
        info = self.nodes.get(node_id, {})
        name = thing_name(node_id)
        body = {"name": name, "description": info.get("name") or f"Sen city sensor node {node_id}",
                "properties": {"sen_node": node_id}}
        loc = info.get("location") or self.gateway_location
        if loc:
            body["Locations"] = [{"name": info.get("name") or name, "description": "node site",
                                  "encodingType": "application/geo+json",
                                  "location": {"type": "Point", "coordinates": [float(loc[0]), float(loc[1])]}}]
        return self._ensure(self._key("thing", node_id), f"{self.base}/Things", name, "Things", body)

    def _observed_property(self, channel):
        name = channel.quantity
        body = {"name": name, "definition": f"urn:sen:channel:{channel.name}", "description": channel.quantity}
        return self._ensure(self._key("op", channel.name), f"{self.base}/ObservedProperties", name,
                            "ObservedProperties", body)

    def _sensor(self, node_id: int):
        name = f"sen-node-{node_id}-sensors"
        body = {"name": name, "description": f"The sensors of Sen node {node_id}", "encodingType":
                "text/html" if self.version == "v1.1" else "application/pdf", "metadata": self.sensor_doc}
        return self._ensure(self._key("sensor", node_id), f"{self.base}/Sensors", name, "Sensors", body)

    def datastream(self, node_id: int, channel):
        key = self._key("ds", node_id, channel.name)
        got = self._recall(key)
        if got is not None:
            return got
        thing = self._thing(node_id)
        unit_name, symbol, definition = UNITS[channel.unit]
        name = datastream_name(node_id, channel)
        body = {"name": name, "description": f"{channel.quantity} measured by Sen node {node_id}",
                "observationType": MEASUREMENT,
                "unitOfMeasurement": {"name": unit_name, "symbol": symbol, "definition": definition},
                "Thing": {"@iot.id": thing}, "Sensor": {"@iot.id": self._sensor(node_id)},
                "ObservedProperty": {"@iot.id": self._observed_property(channel)}}
        if self.version == "v1.1":
            body["properties"] = {"sen_node": node_id, "sen_channel": channel.name}
        return self._ensure(key, f"{self.base}/Things({ref(thing)})/Datastreams", name, "Datastreams", body)

    # --- observations ----------------------------------------------------------------------
    def _present(self, ds, rows) -> dict:
        """senId -> (Observation id, result) for the rows of `rows` the server already holds in `ds`."""
        t0, t1 = min(r[0] for r in rows), max(r[0] for r in rows)
        q = urllib.parse.urlencode({"$filter": f"phenomenonTime ge {t0} and phenomenonTime le {t1}",
                                    "$select": "id,result,parameters", "$top": "1000"}, quote_via=urllib.parse.quote)
        url = f"{self.base}/Datastreams({ref(ds)})/Observations?{q}"
        seen: dict = {}
        while url:
            page = self._get(url) or {}
            values = page.get("value") or []
            for v in values:
                seen[str((v.get("parameters") or {}).get("senId"))] = (v.get("@iot.id"), v.get("result"))
            nxt = page.get("@iot.nextLink")
            # some servers leave spaces unescaped in nextLink
            url = urllib.parse.quote(nxt, safe=":/?&=$,'()%@+") if nxt and values else None
        return seen

    def _supports_data_array(self) -> bool:
        if self.data_array is None:
            if self.version == "v1.1":
                root = self._get(self.base) or {}
                conf = (root.get("serverSettings") or {}).get("conformance") or []
                self.data_array = DATA_ARRAY in conf
            else:
                self.data_array = True  # v1.0 has no serverSettings: try it, fall back on 404
        return self.data_array

    def _post_each(self, ds, rows):
        for row in rows:
            body = dict(zip(COMPONENTS, row), Datastream={"@iot.id": ds})
            request_json("POST", f"{self.base}/Observations", body, timeout=self.timeout, ok_status=(200, 201))

    def send(self, samples):
        try:
            self._send(samples)
        except Exception:
            self.in_doubt = True
            raise

    def _send(self, samples):
        streams: dict = {}
        for s in samples:
            for r in s.readings:
                if r.value is None or r.channel.unit not in UNITS:
                    continue
                ds = self.datastream(s.node_id, r.channel)
                streams.setdefault(ds, []).append(
                    [iso(s.time), r.value, {"flags": qflag_names(r.qflags), "qflags": r.qflags},
                     {"senId": s.reading_id(r), "raw": r.raw, "counter": s.counter, "sample": s.sample}])
        if self.in_doubt:
            for ds in list(streams):
                present = self._present(ds, streams[ds])
                keep = [row for row in streams[ds] if row[3]["senId"] not in present]
                for row in streams[ds]:  # there already, with another value: a recalibrated reading
                    got = present.get(row[3]["senId"])
                    if got is not None and got[1] != row[1]:
                        request_json("PATCH", f"{self.base}/Observations({ref(got[0])})",
                                     {"result": row[1], "resultQuality": row[2], "parameters": row[3]},
                                     timeout=self.timeout, ok_status=(200, 204))
                        self.updated += 1
                if len(keep) != len(streams[ds]):
                    self.skipped_present += len(streams[ds]) - len(keep)
                    log.info("sensorthings: %d observation(s) of this batch were already on the server; "
                             "sending the other %d", len(streams[ds]) - len(keep), len(keep))
                streams[ds] = keep
            streams = {ds: rows for ds, rows in streams.items() if rows}
        if streams:
            self._post(streams)
        self.in_doubt = False

    def _post(self, streams: dict):
        if self._supports_data_array():
            body = [{"Datastream": {"@iot.id": ds}, "components": COMPONENTS, "dataArray@iot.count": len(rows),
                     "dataArray": rows} for ds, rows in streams.items()]
            try:
                _, resp, _ = request_json("POST", f"{self.base}/CreateObservations", body, timeout=self.timeout,
                                          ok_status=(200, 201))
            except UpstreamError as exc:
                if exc.status not in (404, 405, 501):
                    raise
                log.warning("sensorthings: %s has no CreateObservations (HTTP %s); posting each Observation",
                            self.base, exc.status)
                self.data_array = False
            else:
                bad = [x for x in (resp or []) if not str(x).startswith("http")]
                if bad:
                    raise UpstreamError(f"CreateObservations refused {len(bad)} of {len(resp)} observations")
                return
        for ds, rows in streams.items():
            self._post_each(ds, rows)
