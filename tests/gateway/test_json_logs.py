"""The gateway's structured log lines carry the data a call passes with `extra=`."""
import io
import json
import logging

from sen.logs import JsonLogFormatter


def _line(**extra):
    h = logging.StreamHandler(io.StringIO())
    h.setFormatter(JsonLogFormatter())
    lg = logging.getLogger("sen.test.jsonlogs")
    lg.handlers[:] = [h]
    lg.propagate = False
    lg.warning("node %s changed", 201, extra=extra)
    return json.loads(h.stream.getvalue())


def test_extra_fields_are_kept_as_json():
    out = _line(node=201, change={"interval_s": 600}, evidence=["gap 600 s"])
    assert out["msg"] == "node 201 changed" and out["level"] == "warning"
    assert out["node"] == 201 and out["change"] == {"interval_s": 600} and out["evidence"] == ["gap 600 s"]


def test_values_json_cannot_hold_become_text_and_standard_fields_stay_out():
    out = _line(path=__import__("pathlib").Path("/data/raw.log"))
    assert out["path"] == "/data/raw.log"
    assert not {"args", "levelno", "pathname", "thread"} & set(out)
