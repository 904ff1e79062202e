"""NGSI-LD forwarder with FIWARE Smart Data Models, the way FIWARE platforms work.

- One entity per station and model: urn:ngsi-ld:AirQualityObserved:<station> (likewise
  WaterQualityObserved, WeatherObserved); <station> is [nodes.N] station, else sen-node-N.
  Every attribute carries its own observedAt; quality flags are a `qualityFlags` sub-property.
- Each model's attributes are defined by its own @context (Environment, WaterQuality, Weather),
  sent in the body with the core context (application/ld+json, no Link header, as the
  specification requires for JSON-LD bodies).
- The current state never goes back in time. The forwarder remembers, in the gateway's store,
  the observedAt it last wrote for each entity attribute. Per batch, an attribute's newest sample
  that is newer than that goes to the entity (batch upsert, options=update, so other attributes
  stay); the broker's temporal store (e.g. Orion-LD TRoE, Mintaka) records it as history. Every
  other sample — older ones of the same batch, late frames, samples re-sent after an outage —
  goes only to the temporal interface (POST /ngsi-ld/v1/temporal/entities/, plain JSON with the
  model's @context in the Link header), so history keeps it and no newer value is overwritten.
  A re-send of the sample the entity already holds (same observedAt) is skipped. History is
  at least once: a late sample re-sent after a crash may appear twice in the temporal store.
- NGSILD-Tenant goes on every request when a tenant is configured.
"""
import logging

from sen.channels import qflag_names
from sen.gateway.forwarders.base import Forwarder, iso
from sen.gateway.forwarders.http_post import UpstreamError, post_json

log = logging.getLogger("sen.gateway.forward.ngsi_ld")

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
AIR, WATER, WEATHER = "AirQualityObserved", "WaterQualityObserved", "WeatherObserved"
CONTEXTS = {
    AIR: "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld",
    WATER: "https://raw.githubusercontent.com/smart-data-models/dataModel.WaterQuality/master/context.jsonld",
    WEATHER: "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld",
}
# channel name -> (model, attribute, UN/CEFACT unitCode, factor from the channel's unit)
ATTRS = {
    "pm1": (AIR, "pm1", "GQ", 1.0),
    "pm25": (AIR, "pm25", "GQ", 1.0),
    "pm10": (AIR, "pm10", "GQ", 1.0),
    "air_temp": (WEATHER, "temperature", "CEL", 1.0),
    "rh": (WEATHER, "relativeHumidity", "C62", 0.01),  # the models give RH as 0..1
    "pressure": (WEATHER, "atmosphericPressure", "A97", 1.0),
    "rain_depth": (WEATHER, "precipitation", "MMT", 1.0),
    "water_temp": (WATER, "temperature", "CEL", 1.0),
    "ph": (WATER, "pH", "Q30", 1.0),
    "conductivity": (WATER, "conductivity", "D10", 1e-4),  # µS/cm -> S/m
    "turbidity": (WATER, "turbidity", "FTU", 1.0),
    "dissolved_oxygen": (WATER, "O2", "M1", 1.0),
}
# Air stations report their own temperature and humidity inside AirQualityObserved.
AIR_SHARED = {"air_temp", "rh"}
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def station_of(node_id: int, node_info: dict) -> str:
    return str(node_info.get("station") or f"sen-node-{node_id}")


def entity_id(model: str, station: str) -> str:
    return f"urn:ngsi-ld:{model}:{station}"


def observations_for(sample, node_info: dict) -> list[tuple[str, str, str, dict]]:
    """(model, entity id, attribute, Property) for each reading of a sample that maps to a model."""
    names = {r.channel.name for r in sample.readings}
    has_air = bool(names & {"pm1", "pm25", "pm10"})
    observed = iso(sample.time)
    station = station_of(sample.node_id, node_info)
    out = []
    for r in sample.readings:
        spec = ATTRS.get(r.channel.name)
        if spec is None or r.value is None:
            continue
        model, attr, unit, factor = spec
        if has_air and r.channel.name in AIR_SHARED:
            model = AIR
        prop = {"type": "Property", "value": round(r.value * factor, 9), "unitCode": unit, "observedAt": observed}
        if r.qflags:
            prop["qualityFlags"] = {"type": "Property", "value": qflag_names(r.qflags)}
        out.append((model, entity_id(model, station), attr, prop))
    return out


def entity_shell(model: str, eid: str, node_id: int, node_info: dict, location, observed: str) -> dict:
    """The station entity's own attributes, without measurements."""
    ent = {"id": eid, "type": model,
           "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": observed}},
           "source": {"type": "Property", "value": "https://github.com/sen-city/sen"}}
    if model != WATER:  # WaterQualityObserved defines no refDevice
        ent["refDevice"] = {"type": "Relationship", "object": f"urn:ngsi-ld:Device:sen-node-{node_id}"}
    if node_info.get("name"):
        ent["name"] = {"type": "Property", "value": node_info["name"]}
    if location:
        ent["location"] = {"type": "GeoProperty",
                           "value": {"type": "Point", "coordinates": [float(location[0]), float(location[1])]}}
    return ent


class NgsiLdForwarder(Forwarder):
    kind = "ngsi_ld"
    batch_readings = 1500

    def __init__(self, url: str, nodes: dict | None = None, gateway_location=None, tenant: str | None = None):
        self.root = url.rstrip("/")
        self.url = self.root + "/ngsi-ld/v1/entityOperations/upsert?options=update"
        self.temporal_url = self.root + "/ngsi-ld/v1/temporal/entities/"
        self.nodes = nodes or {}
        self.gateway_location = gateway_location
        self.tenant = tenant
        self.latest: dict[str, str] = {}  # "<entity>|<attr>" -> observedAt last written to the entity

    def _headers(self, ctype: str, link: str | None = None) -> dict:
        h = {"Content-Type": ctype}
        if link:
            h["Link"] = LINK.format(link)
        if self.tenant:
            h["NGSILD-Tenant"] = self.tenant
        return h

    def _last(self, key: str) -> str:
        if key not in self.latest:
            got = self.memory.recall(f"{self.root}|{key}") if self.memory is not None else None
            self.latest[key] = got or ""
        return self.latest[key]

    def send(self, samples):
        current: dict[str, dict] = {}  # entity id -> entity body for the upsert
        history: dict[str, dict] = {}  # entity id -> {attr: [instances]} for the temporal interface
        newest: dict[tuple, tuple] = {}  # (eid, attr) -> (observedAt, prop, model, sample)
        rows = []
        for s in samples:
            info = self.nodes.get(s.node_id, {})
            for model, eid, attr, prop in observations_for(s, info):
                rows.append((model, eid, attr, prop, s))
                k = (eid, attr)
                if k not in newest or prop["observedAt"] > newest[k][0]:
                    newest[k] = (prop["observedAt"], prop, model, s)
        updates: dict[str, str] = {}
        for model, eid, attr, prop, s in rows:
            k = (eid, attr)
            last = self._last(f"{eid}|{attr}")
            at = prop["observedAt"]
            if newest[k][1] is prop and at > last:
                ent = current.get(eid)
                if ent is None:
                    info = self.nodes.get(s.node_id, {})
                    ent = current[eid] = entity_shell(model, eid, s.node_id, info,
                                                      info.get("location") or self.gateway_location, at)
                    ent["@context"] = [CONTEXTS[model], CORE_CONTEXT]
                if at > ent["dateObserved"]["value"]["@value"]:
                    ent["dateObserved"]["value"]["@value"] = at
                ent[attr] = prop
                updates[f"{eid}|{attr}"] = at
            elif at != last:
                h = history.setdefault(eid, {"id": eid, "type": model})
                h.setdefault(attr, []).append(prop)
        for eid, ent in current.items():  # dateObserved never goes back either
            at = ent["dateObserved"]["value"]["@value"]
            if at <= self._last(f"{eid}|dateObserved"):
                del ent["dateObserved"]
            else:
                updates[f"{eid}|dateObserved"] = at
        if history:
            for eid, body in history.items():
                post_json(self.temporal_url, body, self._headers("application/json", CONTEXTS[body["type"]]),
                          ok_status=(201, 204))
            log.debug("ngsi-ld: %d late or re-sent sample(s) to the temporal interface",
                      sum(len(v) for b in history.values() for k, v in b.items() if isinstance(v, list)))
        if current:
            status, resp = post_json(self.url, list(current.values()), self._headers("application/ld+json"))
            if status == 207 and resp and resp.get("errors"):
                raise UpstreamError(f"NGSI-LD upsert partly failed: {resp['errors'][:3]}")
        self.latest.update(updates)
        if self.memory is not None and updates:
            self.memory.remember_many([(f"{self.root}|{k}", at) for k, at in updates.items()])
