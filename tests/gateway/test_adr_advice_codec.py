"""sen/adr_advice.py: the central ADR advice's topic and JSON, shared by the ingest (which
writes it) and the gateways (which read it); everything but one node's valid advice on its
own topic is refused with the problem named."""
import json

import pytest

from sen import adr_advice as aa

GOOD = {"node": 417, "sf": 7, "tx_backoff_db": 6, "frames": 20, "computed": 1795000000.5, "v": 1}


def body(**kw):
    d = dict(GOOD, **kw)
    return json.dumps({k: v for k, v in d.items() if v is not ...}).encode()


def test_round_trip_and_topics():
    a = aa.Advice(417, 7, 6, 20, 1795000000.5)
    assert aa.topic("sen", 417) == "sen/adr/417" and aa.subscription("city") == "city/adr/+"
    assert aa.decode("sen/adr/417", aa.encode(a)) == a
    assert json.loads(aa.encode(a)) == GOOD
    assert aa.decode("city/x/adr/417", body()) == a  # a prefix of several levels
    # a later version's extra key is ignored
    assert aa.decode("sen/adr/417", body(gateways=3)) == a
    for sf in range(7, 13):
        for b in range(0, 21, 2):
            assert aa.decode("sen/adr/1", body(node=1, sf=sf, tx_backoff_db=b)).sf == sf


@pytest.mark.parametrize("kw, problem", [
    ({"sf": 6}, "sf 6 is outside 7..12"),
    ({"sf": 13}, "sf 13 is outside 7..12"),
    ({"sf": 7.0}, "sf 7.0 is not an integer"),
    ({"sf": "7"}, "sf '7' is not an integer"),
    ({"sf": True}, "sf True is not an integer"),
    ({"tx_backoff_db": 3}, "tx_backoff_db 3 is not a multiple of 2"),
    ({"tx_backoff_db": 22}, "tx_backoff_db 22 is outside 0..20"),
    ({"tx_backoff_db": -2}, "tx_backoff_db -2 is outside 0..20"),
    ({"tx_backoff_db": None}, "tx_backoff_db None is not an integer"),
    ({"frames": -1}, "frames -1 is outside 0.."),
    ({"computed": 0}, "computed 0 is not a unix time"),
    ({"computed": "now"}, "computed 'now' is not a unix time"),
    ({"v": 2}, "version 2 is not 1"),
    ({"v": True}, "version True is not 1"),
    ({"sf": ...}, "payload lacks sf"),
    ({"v": ..., "computed": ...}, "payload lacks v, computed"),
    ({"node": 418}, "payload is for node 418, the topic for node 417"),
    ({"node": 0}, "node 0 is outside 1..65535"),
])
def test_each_bad_field_is_named(kw, problem):
    with pytest.raises(aa.BadAdvice) as err:
        aa.decode("sen/adr/417", body(**kw))
    assert str(err.value) == problem


@pytest.mark.parametrize("topic, problem", [
    ("sen/uplink/gw-1/417", "is not <prefix>/adr/<node>"),
    ("sen/adr/abc", "is not <prefix>/adr/<node>"),
    ("sen/adr/0417", "is not <prefix>/adr/<node>"),
    ("sen/adr/-4", "is not <prefix>/adr/<node>"),
    ("adr/417", "is not <prefix>/adr/<node>"),
    ("sen/adr/0", "names node 0, outside 1..65535"),
    ("sen/adr/65536", "names node 65536, outside 1..65535"),
])
def test_wrong_topic(topic, problem):
    with pytest.raises(aa.BadAdvice) as err:
        aa.decode(topic, body())
    assert problem in str(err.value)


@pytest.mark.parametrize("payload, problem", [
    (b"", "payload is not JSON"),
    (b"{sf: 7}", "payload is not JSON"),
    (b"\xff\xfe", "payload is not JSON"),
    (b"[7, 6]", "payload is a JSON list, not an object"),
    (body().replace(b"1795000000.5", b"NaN"), "NaN is not JSON"),
    (body().replace(b"1795000000.5", b"Infinity"), "Infinity is not JSON"),
    (b"{" + b" " * 2000 + b"}", "longer than 1024"),
])
def test_payload_that_is_not_advice(payload, problem):
    with pytest.raises(aa.BadAdvice) as err:
        aa.decode("sen/adr/417", payload)
    assert problem in str(err.value)


def test_encode_refuses_what_decode_would():
    with pytest.raises(aa.BadAdvice):
        aa.Advice(417, 7, 5, 20, 1.0)
    with pytest.raises(aa.BadAdvice):
        aa.Advice(70000, 7, 4, 20, 1.0)
