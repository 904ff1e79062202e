"""OGC SensorThings API forwarder: a Thing per node with one Datastream per channel
(created by deep insert on first sight), then Observations in CreateObservations batches.

Each observation carries the reading's idempotent id in `parameters.senId`; a server that
keeps one observation per senId (or a client-side dedupe) holds each reading once.
"""
from sen.gateway.channels import qflag_names
from sen.gateway.forwarders.base import Forwarder, iso
from sen.gateway.forwarders.http_post import UpstreamError, post_json

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


def thing_id(node_id: int) -> str:
    return f"sen-node-{node_id}"


def datastream_id(node_id: int, channel) -> str:
    return f"sen-node-{node_id}-{channel.name}"


def datastream_for(node_id: int, channel) -> dict:
    name, symbol, definition = UNITS[channel.unit]
    return {
        "@iot.id": datastream_id(node_id, channel),
        "name": f"node {node_id} {channel.name}",
        "description": f"{channel.quantity} measured by Sen node {node_id}",
        "observationType": MEASUREMENT,
        "unitOfMeasurement": {"name": name, "symbol": symbol, "definition": definition},
        "ObservedProperty": {"@iot.id": f"sen-{channel.name}", "name": channel.quantity,
                             "definition": f"urn:sen:channel:{channel.name}", "description": channel.quantity},
        "Sensor": {"@iot.id": f"sen-node-{node_id}-sensor", "name": f"Sen node {node_id}",
                   "description": "Sen city sensor node", "encodingType": "text/plain", "metadata": "docs/frame-format.md"},
    }


class SensorThingsForwarder(Forwarder):
    kind = "sensorthings"
    batch_readings = 3000

    def __init__(self, url: str, nodes: dict | None = None):
        self.base = url.rstrip("/")
        if not self.base.endswith("/v1.0") and not self.base.endswith("/v1.1"):
            self.base += "/v1.0"
        self.nodes = nodes or {}
        self.known: set[str] = set()  # datastreams this process has made sure of

    def _ensure(self, node_id: int, channels):
        missing = [c for c in channels if datastream_id(node_id, c) not in self.known]
        if not missing:
            return
        info = self.nodes.get(node_id, {})
        thing = {"@iot.id": thing_id(node_id), "name": info.get("name", f"Sen node {node_id}"),
                 "description": "Sen city sensor node", "properties": {"nodeId": node_id},
                 "Datastreams": [datastream_for(node_id, c) for c in missing]}
        if info.get("location"):
            lon, lat = info["location"][:2]
            thing["Locations"] = [{"name": info.get("name", f"node {node_id}"), "description": "node site",
                                   "encodingType": "application/geo+json",
                                   "location": {"type": "Point", "coordinates": [lon, lat]}}]
        # 409 means the server has them from an earlier run: that is what we wanted
        post_json(f"{self.base}/Things", thing, ok_status=(200, 201, 409))
        self.known.update(datastream_id(node_id, c) for c in missing)

    def send(self, samples):
        streams: dict[str, list] = {}
        for s in samples:
            self._ensure(s.node_id, [r.channel for r in s.readings])
            for r in s.readings:
                streams.setdefault(datastream_id(s.node_id, r.channel), []).append(
                    [iso(s.time), r.value, ",".join(qflag_names(r.qflags)),
                     {"senId": s.reading_id(r), "raw": r.raw, "counter": s.counter}])
        body = [{"Datastream": {"@iot.id": ds},
                 "components": ["phenomenonTime", "result", "resultQuality", "parameters"],
                 "dataArray@iot.count": len(rows), "dataArray": rows} for ds, rows in streams.items()]
        _, resp = post_json(f"{self.base}/CreateObservations", body)
        if isinstance(resp, list) and any(str(x).startswith("error") for x in resp):
            raise UpstreamError("CreateObservations returned errors for some observations")
