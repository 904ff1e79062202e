"""One config schema library (sen/config_schema.py) for gateway.toml, ingest.toml, scenario
files and the node config: every table refuses unknown keys, and 200 generated broken
scenario files are each refused with one SenError line — never another exception."""
import random
import tomllib

import pytest

from sen.config_schema import Table
from sen.emulator import scenario_tables
from sen.emulator.scenario import parse_scenario
from sen.errors import SenError
from sen.gateway import config_tables
from sen.host_tools import node_config
from sen.ingest import config as ingest_config
from tests.emulator_chips.test_scenario import MINI


def _tables(module):
    return [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Table) and v is not Table]


@pytest.mark.parametrize("module", [config_tables, ingest_config, scenario_tables, node_config])
def test_every_table_forbids_unknown_keys(module):
    tables = _tables(module)
    assert tables
    for t in tables:
        assert t.model_config["extra"] == "forbid", t


def _paths(doc, prefix=()):
    """Every (path, value) of a parsed TOML document, tables and arrays of tables included."""
    for k, v in doc.items():
        yield (*prefix, k), v
        if isinstance(v, dict):
            yield from _paths(v, (*prefix, k))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                yield from _paths(x, (*prefix, k, i))


def _set(doc, path, value):
    for p in path[:-1]:
        doc = doc[p]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()


def _toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return repr(v)


def dumps(doc):
    return "\n".join(f"{k} = {_toml(v)}" for k, v in doc.items()) + "\n"


def test_200_broken_scenarios_each_refused_with_one_line():
    import copy
    base = tomllib.loads(MINI)
    parse_scenario(dumps(base), "mini.toml")  # the document as written back is valid
    rng = random.Random(15)
    paths = list(_paths(base))
    wrong = []
    for i in range(200):
        doc = copy.deepcopy(base)
        path, old = rng.choice(paths)
        kind = i % 3
        if kind == 0:
            value = rng.choice([x for x in ("fast", 7, 2.5, True, [1], {"a": 1}, -1e9, float("nan"))
                                if type(x) is not type(old)])
            _set(doc, path, value)
        elif kind == 1:
            _set(doc, (*path, "colour") if isinstance(old, dict) else (*path[:-1], "colour"), 1)
        else:
            _set(doc, path, _DELETE)
        try:
            parse_scenario(dumps(doc), "mini.toml")
        except SenError as exc:
            if "\n" in str(exc) or "mini.toml" not in str(exc):
                wrong.append((i, path, str(exc)))
        except Exception as exc:  # noqa: BLE001 — the point: nothing but SenError comes out
            wrong.append((i, path, f"{type(exc).__name__}: {exc}"))
    assert not wrong, wrong[:10]
