"""Class 7: gateway.toml mistakes. 200 generated malformed files (scalars for tables, wrong
types, unknown keys at every level, out-of-range values, binary junk) are each refused by
the loader with one SenError line naming the key — never another exception. A sample goes
through the real `sen gateway run` (exit 2, one line); a metrics port in use is one line too."""
import random
import socket

from sen.errors import SenError
from sen.gateway import config
from tests.faults.helpers import one_line_error, sen

VALID = {
    "gateway": {"id": "gw-1", "data_dir": "data", "mode": "local", "location": [108.2, 16.0], "batch_max": 500,
                "fsync": True},
    "keys": {"file": "keys.json"},
    "radio": [{"backend": "serial", "name": "usb0", "port": "socket://127.0.0.1:9", "baud": 115200, "sf": 9,
               "frequency_hz": 921400000, "bw_hz": 125000, "sync_word": 18, "watchdog_s": 600}],
    "forwarders": {"mqtt": {"host": "127.0.0.1", "port": 1883, "topic_prefix": "sen", "tls": False},
                   "circular10": {"host": "ftp.example", "port": 21, "user": "u", "password": "p"}},
    "raw_log": {"rotate_mb": 64, "rotate_daily": True, "retain_days": 60},
    "outbox": {"max_pending": 5000000},
    "metrics": {"bind": "127.0.0.1", "port": 9108},
    "log": {"level": "INFO"},
    "nodes": {"17": {"name": "n17", "station": "ST17", "location": [108.2, 16.0]}},
}
OUT_OF_RANGE = [("gateway", "batch_max", 0), ("gateway", "batch_max", -3), ("radio", "watchdog_s", -5),
                ("radio", "watchdog_s", 0.4), ("radio", "sf", 13), ("radio", "baud", 0), ("radio", "sync_word", 999),
                ("radio", "frequency_hz", 868100000), ("forwarders.mqtt", "port", 99999),
                ("forwarders.mqtt", "port", 0), ("metrics", "port", 99999), ("metrics", "port", -1),
                ("outbox", "max_pending", 0), ("raw_log", "retain_days", -1), ("raw_log", "rotate_mb", 0.5),
                ("forwarders.circular10", "port", 70000), ("log", "level", "LOUD"), ("gateway", "mode", "both")]


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def dumps(doc: dict) -> str:
    out, tables = [], []
    for k, v in doc.items():
        if isinstance(v, dict) and k in ("forwarders", "nodes") and all(isinstance(x, dict) for x in v.values()):
            tables += [(f"{k}.{sub}", t) for sub, t in v.items()]
        elif isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables += [(f"[{k}]", t) for t in v]
        else:
            out.append(f"{k} = {_toml_value(v)}")
    for name, t in tables:
        out.append(f"[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in t.items()]
    return "\n".join(out) + "\n"


def _tables(doc):
    """(path text, table) for every table of the document."""
    yield "", doc
    for k, v in doc.items():
        if k == "radio":
            yield "radio[0]", v[0]
        elif k in ("forwarders", "nodes"):
            for sub, t in v.items():
                yield f"{k}.{sub}", t
        elif isinstance(v, dict):
            yield k, v


def _lookup(doc, where):
    return dict(_tables(doc))[where]


def malformed(rng: random.Random, i: int):
    """-> (file bytes, text the refusal must contain)."""
    import copy
    doc = copy.deepcopy(VALID)
    kind = i % 5
    if kind == 0:  # a scalar where a table belongs
        where = rng.choice(["gateway", "keys", "metrics", "raw_log", "outbox", "log", "forwarders", "nodes",
                            "forwarders.mqtt", "nodes.17", "radio"])
        scalar = rng.choice([5, "x", True, 1.5, [1, 2]])
        if "." in where:
            top, sub = where.split(".")
            doc[top][sub] = scalar
        else:
            doc[where] = scalar
        return dumps(doc).encode(), where.split(".")[-1] if where != "radio" else "radio"
    if kind == 1:  # a wrong type
        where, table = rng.choice([t for t in _tables(doc) if t[0]])
        key = rng.choice(sorted(table))
        old = table[key]
        table[key] = rng.choice([x for x in ("fast", 7, 2.5, True, [1], {"a": 1})
                                 if type(x) is not type(old) and not (isinstance(old, float) and type(x) is int)])
        return dumps(doc).encode(), f"{where}.{key}" if where else key
    if kind == 2:  # an unknown key, at any level
        where, table = rng.choice(list(_tables(doc)))
        key = rng.choice(["colour", "intervl_s", "prot", "hostname", "enable", "x_y"])
        table[key] = rng.choice([1, "v", True])
        return dumps(doc).encode(), f"{where}.{key}" if where else key
    if kind == 3:  # a senseless value
        where, key, value = rng.choice(OUT_OF_RANGE)
        target = doc["radio"][0] if where == "radio" else _lookup(doc, where)
        target[key] = value
        return dumps(doc).encode(), f"{'radio[0]' if where == 'radio' else where}.{key}"
    junk = bytearray(dumps(doc).encode())  # binary junk: bytes that are not UTF-8 text, or random bytes
    if rng.random() < 0.5:
        at = rng.randrange(len(junk))
        junk[at:at] = rng.choice([b"\xff\xfe", b"\x80", b"\xc3\x28", b"\x00\xff"])
    else:
        junk = bytearray(rng.randbytes(rng.randrange(1, 400)) + b"\xff")
    return bytes(junk), "gateway.toml"


def test_200_malformed_gateway_toml_files_each_refused_with_the_key(tmp_path):
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    p = tmp_path / "gateway.toml"
    p.write_text(dumps(VALID))
    config.load(p)  # the unmutated document is valid
    rng = random.Random(16)
    wrong = []
    for i in range(200):
        data, key = malformed(rng, i)
        p.write_bytes(data)
        try:
            config.load(p)
            wrong.append((i, key, "accepted"))
        except SenError as exc:
            line = str(exc)
            if "\n" in line or key not in line:
                wrong.append((i, key, line))
        except Exception as exc:  # noqa: BLE001 — the point: nothing but SenError comes out
            wrong.append((i, key, f"{type(exc).__name__}: {exc}"))
    assert not wrong, wrong[:10]


def test_cli_refuses_a_sample_with_one_line_and_exit_2(tmp_path):
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    p = tmp_path / "gateway.toml"
    rng = random.Random(7)
    for i in range(5):
        data, key = malformed(rng, i)
        p.write_bytes(data)
        r = sen("gateway", "run", "-c", p, cwd=tmp_path, timeout=60)
        assert one_line_error(r) and key in r.stderr, (i, key, r.stderr)


def test_metrics_port_in_use_is_one_line(tmp_path):
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    doc = dict(VALID, metrics={"bind": "127.0.0.1", "port": holder.getsockname()[1]}, forwarders={})
    (tmp_path / "gateway.toml").write_text(dumps(doc))
    try:
        r = sen("gateway", "run", "-c", tmp_path / "gateway.toml", cwd=tmp_path, timeout=60)
    finally:
        holder.close()
    err = [x for x in r.stderr.splitlines() if x.startswith("sen: error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(err) == 1, r.stderr
    assert "metrics.port" in err[0]
