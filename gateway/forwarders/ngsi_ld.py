"""NGSI-LD forwarder: FIWARE Smart Data Models AirQualityObserved, WaterQualityObserved and
WeatherObserved entities, upserted in batches (POST /ngsi-ld/v1/entityOperations/upsert).

One entity per sample and model, with the sample's idempotent id in the entity id, so a
re-sent batch overwrites itself. Units follow the models: relative humidity 0–1,
conductivity in S/m (from µS/cm), unit codes from UN/CEFACT.
"""
from sen.gateway.forwarders.base import Forwarder, iso
from sen.gateway.forwarders.http_post import UpstreamError, post_json

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
MODEL_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"

AIR, WATER, WEATHER = "AirQualityObserved", "WaterQualityObserved", "WeatherObserved"
# channel name -> (model, attribute, unitCode, factor from the channel's unit)
ATTRS = {
    "pm1": (AIR, "pm1", "GQ", 1.0),
    "pm25": (AIR, "pm25", "GQ", 1.0),
    "pm10": (AIR, "pm10", "GQ", 1.0),
    "air_temp": (WEATHER, "temperature", "CEL", 1.0),
    "rh": (WEATHER, "relativeHumidity", "C62", 0.01),
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


def entities_for(sample, node_info: dict, gateway_location) -> list[dict]:
    names = {r.channel.name for r in sample.readings}
    has_air = bool(names & {"pm1", "pm25", "pm10"})
    location = node_info.get("location") or gateway_location
    observed = iso(sample.time)
    out: dict[str, dict] = {}
    for r in sample.readings:
        spec = ATTRS.get(r.channel.name)
        if spec is None or r.value is None:
            continue
        model, attr, unit, factor = spec
        if has_air and r.channel.name in AIR_SHARED:
            model = AIR
        ent = out.get(model)
        if ent is None:
            ent = out[model] = {
                "id": f"urn:ngsi-ld:{model}:sen-{sample.id}",
                "type": model,
                "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": observed}},
                "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:sen-node-{sample.node_id}"},
                "source": {"type": "Property", "value": "sen"},
                "@context": [MODEL_CONTEXT, CORE_CONTEXT],
            }
            if node_info.get("name"):
                ent["name"] = {"type": "Property", "value": node_info["name"]}
            if location:
                ent["location"] = {"type": "GeoProperty",
                                   "value": {"type": "Point", "coordinates": [float(location[0]), float(location[1])]}}
        prop = {"type": "Property", "value": round(r.value * factor, 9), "unitCode": unit, "observedAt": observed}
        if r.qflags:
            prop["qualityFlags"] = {"type": "Property", "value": r.qflags}
        ent[attr] = prop
    return list(out.values())


class NgsiLdForwarder(Forwarder):
    kind = "ngsi_ld"
    batch_readings = 1500

    def __init__(self, url: str, nodes: dict | None = None, gateway_location=None, tenant: str | None = None):
        self.url = url.rstrip("/") + "/ngsi-ld/v1/entityOperations/upsert?options=replace"
        self.nodes = nodes or {}
        self.gateway_location = gateway_location
        self.headers = {"Content-Type": "application/ld+json"}
        if tenant:
            self.headers["NGSILD-Tenant"] = tenant

    def send(self, samples):
        body = [e for s in samples for e in entities_for(s, self.nodes.get(s.node_id, {}), self.gateway_location)]
        if not body:
            return
        status, resp = post_json(self.url, body, self.headers)
        if status == 207 and resp and resp.get("errors"):
            raise UpstreamError(f"NGSI-LD upsert partly failed: {resp['errors'][:3]}")
