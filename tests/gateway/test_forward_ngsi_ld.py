"""NGSI-LD entities checked by the Smart Data Models' own artefacts (offline): each entity,
normalized to key-values, validates against its model's JSON Schema; expanded with pyld under
the model's own @context, every attribute IRI equals the one in pysmartdatamodels' database.
A receiver keeping entities and temporal instances shows a late sample never replaces a newer
value and none is lost."""
import gzip
import json
import time
from pathlib import Path

import jsonschema
import pysmartdatamodels
from pyld import jsonld
from referencing import Registry, Resource

from sen.bench.gateway_receivers import HttpRecorder
from sen.gateway.forwarders.base import iso
from sen.gateway.forwarders.ngsi_ld import CONTEXTS, NgsiLdForwarder
from sen.gateway.store import connect
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway
from .test_forward_http_ftp import NODES, traffic

REPO = Path(__file__).resolve().parents[2]
SDM = REPO.parent / "shared" / "standards" / "smart-data-models"
MODELS = ("AirQualityObserved", "WaterQualityObserved", "WeatherObserved")


def local_file(url: str) -> Path:
    """The local copy of a schema or context URL of the Smart Data Models (README of SDM)."""
    name = url.split("#", 1)[0].rstrip("/").rsplit("/", 1)[1]
    if name in ("schema.json", "context.jsonld"):
        model = next(m for m in MODELS if f"/{m}/" in url or url.endswith(
            {"AirQualityObserved": "dataModel.Environment/master/context.jsonld",
             "WaterQualityObserved": "dataModel.WaterQuality/master/context.jsonld",
             "WeatherObserved": "dataModel.Weather/master/context.jsonld"}[m]))
        return SDM / model / name
    return SDM / name


def _retrieve(uri: str):
    return Resource.from_contents(json.loads(local_file(uri).read_text()))


def validator(model: str):
    schema = json.loads((SDM / model / "schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, registry=Registry(retrieve=_retrieve),
                                           format_checker=jsonschema.FormatChecker())


def key_values(entity: dict) -> dict:
    """NGSI-LD normalized -> key-values (the simplified representation of the specification)."""
    out = {}
    for k, v in entity.items():
        if k == "@context" or not isinstance(v, dict):
            out[k] = v
        elif v.get("type") == "Relationship":
            out[k] = v["object"]
        else:
            val = v["value"]
            out[k] = val["@value"] if isinstance(val, dict) and "@value" in val else val
    return out


def sdm_iris() -> dict:
    path = Path(pysmartdatamodels.__file__).with_name("model-assets") / "smartdatamodels.json.gz"
    rows = json.loads(gzip.open(path).read())
    return {(r["dataModel"], r["property"]): r["context"] for r in rows if r.get("dataModel") in MODELS}


def loader(url, options=None):
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": json.loads(local_file(url).read_text())}


def test_every_entity_validates_and_expands_as_the_models_say(tmp_path):
    assert SDM.is_dir(), f"{SDM} missing: the standards folder sits beside the repository (shared/standards)"
    http = HttpRecorder()
    fleet = Fleet(3, seed=5)
    gw = LiveGateway(tmp_path, fleet, [NgsiLdForwarder(http.url, NODES, tenant="danang")], nodes=NODES).start()
    gw.inject_all(traffic(fleet))
    gw.wait_stored(3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(http.ngsi) < 4:
        time.sleep(0.05)
    gw.stop()
    http.close()
    sent = [e for p, h, body in http.requests if p.startswith("/ngsi-ld/v1/entityOperations/upsert") for e in body]
    assert {e["type"] for e in sent} == set(MODELS) and len(sent) == 4
    # header names are case-insensitive (urllib sends "Ngsild-tenant")
    assert all({k.lower(): v for k, v in h.items()}.get("ngsild-tenant") == "danang" for p, h, _ in http.requests)
    iris = sdm_iris()
    jsonld.set_document_loader(loader)
    for e in sent:
        kv = key_values(e)
        errors = sorted(validator(e["type"]).iter_errors({k: v for k, v in kv.items() if k != "@context"}),
                        key=str)
        assert not errors, (e["id"], [f"{list(x.path)}: {x.message}" for x in errors])
        assert e["@context"][0] == CONTEXTS[e["type"]]
        doc = dict({k: v for k, v in kv.items() if k != "@context"}, **{"@context": CONTEXTS[e["type"]]})
        expanded = jsonld.expand(doc)[0]
        attrs = [k for k in e if k not in ("id", "type", "@context")]
        for attr in attrs:
            want = iris[(e["type"], attr)]
            assert want in expanded, (e["type"], attr, want, sorted(expanded))


def test_late_sample_never_replaces_a_newer_value_and_none_is_lost(tmp_path):
    http = HttpRecorder()
    fleet = Fleet(2, seed=9, interval_s=300)
    gw = LiveGateway(tmp_path, fleet, [NgsiLdForwarder(http.url, NODES)], nodes=NODES).start()
    items = list(fleet.frames(20))
    late = items[4:6]  # both nodes' third frame, held back
    gw.inject_all(items[:4] + items[6:])
    gw.wait_stored(18)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and gw.depth()["ngsi_ld"]:
        time.sleep(0.05)
    before = {eid: dict(e) for eid, e in http.ngsi.items()}
    gw.inject_all(late)
    gw.wait_stored(20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and gw.depth()["ngsi_ld"]:
        time.sleep(0.05)
    c = connect(gw.cfg.store_path, readonly=True)
    rows = c.execute("SELECT node_id, time FROM readings GROUP BY node_id, counter, sample").fetchall()
    late_rows = c.execute("SELECT node_id, time FROM readings WHERE counter=2 GROUP BY node_id").fetchall()
    c.close()
    gw.stop()
    http.close()
    assert len(rows) == 20 and len(late_rows) == 2
    # the entities still hold the newest samples, attribute by attribute
    for eid, e in http.ngsi.items():
        for attr, v in e.items():
            if isinstance(v, dict) and "observedAt" in v:
                assert v == before[eid][attr], (eid, attr)
    newest = {NODES[n]["station"]: iso(t) for n, t in rows if t == max(t2 for n2, t2 in rows if n2 == n)}
    for eid, e in http.ngsi.items():
        assert e["pm25" if "AirQuality" in eid else "atmosphericPressure"]["observedAt"] == newest[eid.rsplit(":", 1)[1]]
    # every sample is in the history (values written to the entity as the broker's temporal store
    # keeps them, and the late ones through the temporal interface), each once
    hist = [(eid.rsplit(":", 1)[1], a, i["observedAt"]) for eid, insts in http.ngsi_temporal.items() for a, i in insts]
    assert len(hist) == len(set(hist))
    want = {(NODES[n]["station"], a, iso(t)) for n, t in rows
            for a in ("pm25", "pm10", "temperature", "relativeHumidity", "atmosphericPressure")}
    assert set(hist) == want
    temporal_posts = [(p, h, b) for p, h, b in http.requests if p.startswith("/ngsi-ld/v1/temporal/entities")]
    assert temporal_posts, "the late samples went to the temporal interface"
    for _, h, b in temporal_posts:  # plain JSON: the model's context goes in the Link header
        assert h["Content-Type"] == "application/json" and "@context" not in b
        assert h["Link"] == f'<{CONTEXTS[b["type"]]}>; rel="http://www.w3.org/ns/json-ld#context"; ' \
                            f'type="application/ld+json"'
    late_times = {iso(t) for _, t in late_rows}
    assert late_times <= {i["observedAt"] for _, h, b in temporal_posts for k, v in b.items() if isinstance(v, list)
                          for i in v}
    upserted = {v["observedAt"] for p, _, b in http.requests if "entityOperations/upsert" in p for e in b
                for v in e.values() if isinstance(v, dict) and "observedAt" in v}
    assert not late_times & upserted  # late samples never written to the current state
