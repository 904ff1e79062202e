"""Both implementations against docs/frame-vectors.json."""
import json

import pytest

import frame  # firmware/frame.py, as the node imports it
from sen.gateway.downlink_encode import encode_downlink
from sen.gateway.frame_decode import FrameRejected, decode_uplink
from sen.paths import FRAME_VECTORS

VECTORS = json.loads(FRAME_VECTORS.read_text())


def test_vector_file_is_current():
    from tests.frame.make_vectors import render

    assert FRAME_VECTORS.read_text() == render(), "run tests/frame/make_vectors.py"


@pytest.mark.parametrize("vec", VECTORS["uplink_valid"], ids=lambda v: v["name"])
def test_firmware_encoder_matches_vector(vec):
    samples = [(s["dt"], [(r["channel"], r["scaled"], r["qflags"]) for r in s["readings"]]) for s in vec["samples"]]
    out = frame.Framer(vec["node_id"], bytes.fromhex(vec["key"])).encode(vec["counter"], vec["flags"], samples)
    assert out.hex() == vec["frame"]


@pytest.mark.parametrize("vec", VECTORS["uplink_valid"], ids=lambda v: v["name"])
def test_gateway_decodes_vector(vec):
    up = decode_uplink(bytes.fromhex(vec["frame"]), bytes.fromhex(vec["key"]), vec["counter"])
    assert up.header.node_id == vec["node_id"]
    assert up.counter == vec["counter"]
    got = [(s.offset_s, [(r.channel.id, r.scaled, r.qflags) for r in s.readings]) for s in up.samples]
    want = [(s["dt"] if vec["flags"] & frame.UP_BATCH else 0,
             [(r["channel"], r["scaled"], r["qflags"]) for r in s["readings"]]) for s in vec["samples"]]
    assert got == want


@pytest.mark.parametrize("vec", VECTORS["uplink_invalid"], ids=lambda v: v["name"])
def test_gateway_rejects_vector_with_reason(vec):
    with pytest.raises(FrameRejected) as err:
        decode_uplink(bytes.fromhex(vec["frame"]), bytes.fromhex(vec["key"]), vec["counter"])
    assert err.value.reason == vec["reason"]
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("vec", VECTORS["downlink_valid"], ids=lambda v: v["name"])
def test_downlink_encoder_and_firmware_parser(vec):
    key = bytes.fromhex(vec["key"])
    config = vec["config"] or None
    assert encode_downlink(vec["node_id"], key, vec["acked_counter"], config).hex() == vec["frame"]
    flags, parsed = frame.parse_downlink(bytes.fromhex(vec["frame"]), vec["node_id"], frame.Mic(key), vec["acked_counter"])
    assert flags & frame.DN_ACK
    assert parsed == vec["config"]


@pytest.mark.parametrize("vec", VECTORS["downlink_invalid"], ids=lambda v: v["name"])
def test_firmware_refuses_bad_downlink(vec):
    with pytest.raises(ValueError) as err:
        frame.parse_downlink(bytes.fromhex(vec["frame"]), vec["node_id"], frame.Mic(bytes.fromhex(vec["key"])), vec["expect_counter"])
    assert str(err.value) == vec["reason"]


def test_air_set_fits_30_bytes():
    air = next(v for v in VECTORS["uplink_valid"] if v["name"] == "air_typical")
    assert len(bytes.fromhex(air["frame"])) <= 30
