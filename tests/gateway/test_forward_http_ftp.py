"""NGSI-LD and SensorThings bodies checked against the models' required attributes and units
on a real loopback http.server; Circular 10/2021 files on a real pyftpdlib server."""
import ftplib
from datetime import datetime, timedelta, timezone

from sen.bench.gateway_receivers import FtpServer, HttpRecorder
from sen.firmware_modules import load
from sen.gateway.forwarders.circular10 import Circular10Forwarder
from sen.gateway.forwarders.ngsi_ld import NgsiLdForwarder
from sen.gateway.forwarders.sensorthings import SensorThingsForwarder
from sen.gateway.rx_meta import RxMeta
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway

frame = load("frame")
T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z = 18:06:40 in Vietnam
NODES = {1: {"name": "Hai Chau air", "station": "HAICHAU", "location": [108.22, 16.07]},
         2: {"name": "Han river", "station": "SONGHAN", "location": [108.23, 16.06]},
         3: {"name": "Son Tra rain", "station": "SONTRA", "location": [108.27, 16.10]}}


def traffic(fleet):
    """An air frame, a water frame (calibration mode on pH) and a weather/rain frame."""
    f = fleet.framers
    return [
        (f[1].encode(0, frame.UP_BOOT, [(0, [(1, 312, 0), (2, 130, 0), (3, 10085, 0), (5, 35, 0), (6, 52, 0),
                                             (7, 198, 0)])]), RxMeta("gw-test", T0, rssi=-90, snr=4)),
        (f[2].encode(0, frame.UP_BOOT, [(0, [(8, 2750, 0), (9, 712, 16), (10, 1413, 0), (11, 125, 0),
                                             (13, 826, 0)])]), RxMeta("gw-test", T0 + 1, rssi=-95, snr=2)),
        (f[3].encode(0, frame.UP_BOOT, [(0, [(1, 295, 0), (2, 190, 0), (3, 10050, 0), (15, 42, 0),
                                             (16, None, 1)])]), RxMeta("gw-test", T0 + 2, rssi=-99, snr=-3)),
    ]


def test_ngsi_ld_and_sensorthings_bodies(tmp_path):
    http = HttpRecorder()
    fleet = Fleet(3, seed=5)
    fws = [NgsiLdForwarder(http.url, NODES), SensorThingsForwarder(http.url, NODES)]
    gw = LiveGateway(tmp_path, fleet, fws, nodes=NODES).start()
    gw.inject_all(traffic(fleet))
    gw.wait_stored(3)
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (len(http.ngsi) < 4 or len(http.observations) < 15):
        time.sleep(0.05)
    gw.stop()
    http.close()
    ngsi_posts = [(p, h) for p, h, _ in http.requests if p.startswith("/ngsi-ld")]
    assert ngsi_posts and all(h["Content-Type"] == "application/ld+json" and "Link" not in h for _, h in ngsi_posts)
    ents = http.ngsi
    # one entity per station and model; node 1's pressure goes to WeatherObserved, its T/RH stay
    # with its PM in AirQualityObserved
    assert sorted(ents) == ["urn:ngsi-ld:AirQualityObserved:HAICHAU", "urn:ngsi-ld:WaterQualityObserved:SONGHAN",
                            "urn:ngsi-ld:WeatherObserved:HAICHAU", "urn:ngsi-ld:WeatherObserved:SONTRA"]
    for e in ents.values():  # required by the Smart Data Models: id, type, dateObserved, location
        assert e["dateObserved"]["value"]["@type"] == "DateTime"
        assert e["location"]["type"] == "GeoProperty" and e["location"]["value"]["type"] == "Point"
        assert e["@context"][0].endswith({"AirQualityObserved": "dataModel.Environment/master/context.jsonld",
                                          "WaterQualityObserved": "dataModel.WaterQuality/master/context.jsonld",
                                          "WeatherObserved": "dataModel.Weather/master/context.jsonld"}[e["type"]])
    air = ents["urn:ngsi-ld:AirQualityObserved:HAICHAU"]
    assert air["pm25"] == {"type": "Property", "value": 35.0, "unitCode": "GQ", "observedAt": "2026-11-18T11:06:40.000Z"}
    assert air["pm10"]["value"] == 52.0 and air["temperature"]["unitCode"] == "CEL"
    assert air["relativeHumidity"]["value"] == 0.65  # 65 % -> 0..1
    assert air["location"]["value"]["coordinates"] == [108.22, 16.07]
    water = ents["urn:ngsi-ld:WaterQualityObserved:SONGHAN"]
    assert water["conductivity"]["value"] == 0.1413 and water["conductivity"]["unitCode"] == "D10"  # 1413 µS/cm
    assert water["pH"]["value"] == 7.12 and water["pH"]["qualityFlags"]["value"] == ["calibrating"]
    assert water["O2"]["value"] == 8.26 and water["O2"]["unitCode"] == "M1"
    assert water["temperature"]["value"] == 27.5 and water["turbidity"]["value"] == 12.5
    assert ents["urn:ngsi-ld:WeatherObserved:HAICHAU"]["atmosphericPressure"]["value"] == 1008.5
    assert "temperature" not in ents["urn:ngsi-ld:WeatherObserved:HAICHAU"]
    weather = ents["urn:ngsi-ld:WeatherObserved:SONTRA"]
    assert weather["atmosphericPressure"]["value"] == 1005.0 and weather["atmosphericPressure"]["unitCode"] == "A97"
    assert weather["precipitation"]["value"] == 4.2 and weather["relativeHumidity"]["value"] == 0.95
    assert "rain_intensity" not in str(weather)  # missing value: not sent as a Property
    # SensorThings: Things with Datastreams (unitOfMeasurement, ObservedProperty, Sensor), observations by id
    assert set(http.things) == {"sen-node-1", "sen-node-2", "sen-node-3"}
    for ds in http.datastreams.values():
        uom = ds["unitOfMeasurement"]
        assert {"name", "symbol", "definition"} <= set(uom) and uom["definition"].startswith("http")
        assert {"name", "definition", "description"} <= set(ds["ObservedProperty"])
        assert {"name", "encodingType", "metadata"} <= set(ds["Sensor"])
    assert http.datastreams["sen-node-1/pm25"]["unitOfMeasurement"]["symbol"] == "µg/m³"
    assert http.datastreams["sen-node-2/conductivity"]["unitOfMeasurement"]["symbol"] == "µS/cm"
    assert {ds["Sensor"]["encodingType"] for ds in http.datastreams.values()} == {"text/html"}
    assert all("@iot.id" not in b for p, _, b in http.requests if p.startswith("/v1.1/") and isinstance(b, dict))
    assert len(http.observations) == 15  # 6 + 5 + 5 readings, each once, less the one without a value
    ds, obs = http.observations["1-0-0-pm25"]
    assert ds == "sen-node-1/pm25" and obs["result"] == 35.0 and obs["phenomenonTime"] == "2026-11-18T11:06:40.000Z"
    assert obs["resultQuality"] == {"flags": ["ok"], "qflags": 0}
    assert "3-0-0-rain_intensity" not in http.observations  # missing: a Measurement needs a number
    for path, _, body in http.requests:
        if path == "/v1.1/CreateObservations":
            for group in body:
                assert group["dataArray@iot.count"] == len(group["dataArray"])
                assert group["components"][:2] == ["phenomenonTime", "result"]


def test_http_upstream_down_then_up_redelivers_idempotently(tmp_path):
    http = HttpRecorder(fail=True)
    fleet = Fleet(3, seed=6)
    gw = LiveGateway(tmp_path, fleet, [NgsiLdForwarder(http.url, NODES)], nodes=NODES).start()
    gw.inject_all(list(fleet.frames(30)))
    gw.wait_stored(30)
    import time
    time.sleep(1.0)
    assert gw.depth()["ngsi_ld"] == 180 and not http.ngsi
    http.fail = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and gw.depth()["ngsi_ld"]:
        time.sleep(0.05)
    gw.stop()
    http.close()
    # one Air and one Weather entity per station, each holding the newest sample; the other
    # samples of the outage went to the temporal interface: each attribute value once in history
    assert len(http.ngsi) == 6 and set(http.ngsi_deliveries.values()) == {1}
    hist = [(eid, a, i["observedAt"]) for eid, insts in http.ngsi_temporal.items() for a, i in insts]
    assert len(hist) == len(set(hist)) == 30 * 5  # pm25, pm10, temperature, relativeHumidity, pressure


def test_circular10_files_over_ftp(tmp_path):
    ftp = FtpServer(tmp_path / "ftp")
    fleet = Fleet(3, seed=7)
    fw = Circular10Forwarder("127.0.0.1", ftp.port, ftp.user, ftp.password, "DN", "SEN", NODES)
    gw = LiveGateway(tmp_path, fleet, [fw], nodes=NODES).start()
    gw.inject_all(traffic(fleet))
    gw.wait_stored(3)
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(ftp.files()) < 3:
        time.sleep(0.05)
    gw.stop()
    files = ftp.files()
    ftp.close()
    local = datetime.fromtimestamp(T0, timezone(timedelta(hours=7)))
    assert local.strftime("%Y%m%d%H%M%S") == "20261118180640"
    assert files == ["HAICHAU/2026/11/18/DN_SEN_HAICHAU_20261118180640.txt",
                     "SONGHAN/2026/11/18/DN_SEN_SONGHAN_20261118180641.txt",
                     "SONTRA/2026/11/18/DN_SEN_SONTRA_20261118180642.txt"]
    air = (tmp_path / "ftp" / files[0]).read_bytes().decode()
    assert air.split("\r\n") == [
        "Temp\t31.2\toC\t20261118180640\t00", "RH\t65.0\t%\t20261118180640\t00",
        "P\t1008.5\thPa\t20261118180640\t00", "PM2,5\t35\tug/m3\t20261118180640\t00",
        "PM10\t52\tug/m3\t20261118180640\t00", ""]
    water = (tmp_path / "ftp" / files[1]).read_text().splitlines()
    assert "pH\t7.12\t-\t20261118180641\t01" in water  # calibration mode -> 01
    rain = (tmp_path / "ftp" / files[2]).read_text().splitlines()
    assert "Rain\t4.2\tmm\t20261118180642\t00" in rain


def test_circular10_same_station_and_second_merge_not_replace(tmp_path):
    """Two nodes of one station sample in the same second and go out in two batches: the
    second file must carry both nodes' parameters; a re-send changes nothing."""
    import time

    from sen.gateway.outbox import Outbox

    ftp = FtpServer(tmp_path / "ftp")
    fleet = Fleet(3, seed=7)
    nodes = {1: dict(NODES[1]), 3: dict(NODES[3], station="HAICHAU")}
    fw = Circular10Forwarder("127.0.0.1", ftp.port, ftp.user, ftp.password, "DN", "SEN", nodes)
    gw = LiveGateway(tmp_path, fleet, [fw], nodes=nodes).start()
    air, _, rain = traffic(fleet)
    name = "HAICHAU/2026/11/18/DN_SEN_HAICHAU_20261118180640.txt"

    def wait_for(pred):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pred():
            time.sleep(0.05)

    gw.inject_all([air])
    wait_for(lambda: ftp.stored[name] == 1)
    gw.inject_all([(rain[0], RxMeta("gw-test", T0 + 0.6, rssi=-99, snr=-3))])  # same second, second batch
    gw.wait_stored(2)
    wait_for(lambda: ftp.stored[name] == 2)
    gw.stop()
    got = (tmp_path / "ftp" / name).read_bytes().decode().split("\r\n")
    assert ftp.files() == [name]
    # air first (it arrived first), then the rain node's; the rain node's Temp is the newer value
    assert got == ["Temp\t29.5\toC\t20261118180640\t00", "RH\t95.0\t%\t20261118180640\t00",
                   "P\t1005.0\thPa\t20261118180640\t00", "PM2,5\t35\tug/m3\t20261118180640\t00",
                   "PM10\t52\tug/m3\t20261118180640\t00", "Rain\t4.2\tmm\t20261118180640\t00", ""]

    # at-least-once: the outbox re-sends everything; the file neither changes nor is re-uploaded
    ob = Outbox(gw.cfg.store_path, "again")
    samples, _ = ob.fetch(1000)
    ob.close()
    fw2 = Circular10Forwarder("127.0.0.1", ftp.port, ftp.user, ftp.password, "DN", "SEN", nodes)
    fw2.send(samples)
    fw2.close()
    assert (tmp_path / "ftp" / name).read_bytes().decode().split("\r\n") == got
    assert ftp.stored[name] == 2
    ftp.close()
