"""One way to declare and check a config file: pydantic v2 models, unknown keys refused.

gateway.toml, ingest.toml, scenario files and the node config each declare their tables as
`Table` models. `check(Model, data, style)` validates and turns the first problem into ONE
SenError line: the file, the key path and the fix (so a command exits 2 with that line). A
`Style` says how that file names its keys; the default is `gateway.toml: radio[0].sf …`.

Field types are strict because TOML already gives typed values: "1883" is not a port and
true is not a number. A validator that knows a better fix raises `bad(problem, fix)`.
"""
import difflib
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import PydanticCustomError

from sen.errors import SenError

# int or float, never a bool; NaN and infinities are refused (no config value means them)
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def bad(problem: str, fix: str, key: str | None = None, shown: str | None = None) -> PydanticCustomError:
    """The error a validator raises: `problem` follows the key path; `key` names a sub-key;
    `shown` replaces the key path where a table is better named as written, e.g. [forwarders.kafka]."""
    return PydanticCustomError("sen", "{problem}", {"problem": problem, "fix": fix, "key": key, "shown": shown})


def one_of(*options, fix: str | None = None):
    """A str field limited to `options`: 'x' is unknown — use one of: a, b."""
    def check(v):
        if v not in options:
            raise bad(f"'{v}' is unknown", fix or f"use one of: {', '.join(options)}")
        return v
    return Annotated[str, AfterValidator(check)]


def within(lo, hi, fix: str, typ=int, name_range=False):
    """A number field limited to lo..hi (either may be None); name_range says "is outside lo..hi"."""
    def check(v):
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise bad(f"{v!r} is outside {lo}..{hi}" if name_range else f"{v!r} is out of range", fix)
        return v
    return Annotated[Number if typ is float else typ, AfterValidator(check)]


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Table(BaseModel):
    """A TOML table: known keys only, exact TOML types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any):
        # Before field checks, so a scalar written for a table, or a typo, is what the user
        # hears about first (a typo would otherwise show up as "is missing" of the real key).
        if not isinstance(data, dict):
            raise PydanticCustomError("not_table", "not a table", {"value": short(data)})
        known = [f.alias or name for name, f in cls.model_fields.items()]
        for key in data:
            if key not in known:
                raise cls.unknown_key(key, known)
        return data

    @classmethod
    def unknown_key(cls, key, known) -> PydanticCustomError:
        """The error for a key the table does not have; a table of named parts words it its own way."""
        near = difflib.get_close_matches(str(key), known, n=1)
        return PydanticCustomError("extra_forbidden", "unknown", {"known": known, "near": near, "key": key})


def create_table(name: str, parts: dict) -> type[Table]:
    """A table of optional named parts, e.g. one sub-table per quantity; other names are unknown keys."""
    return create_model(name, __base__=Table, **{k: (t | None, None) for k, t in parts.items()})


def read_toml(path, what: str, fix_missing: str, example: str = "") -> dict:
    """The parsed document, or one SenError line for a file that is absent, unreadable or not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SenError(f"config file {path} does not exist", fix_missing) from None
    except OSError as exc:
        raise SenError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    except UnicodeDecodeError as exc:
        raise SenError(f"{path} is not a UTF-8 text file (byte {exc.start} is {exc.object[exc.start]:#04x})",
                       f"give the {what} text file{example}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SenError(f"{path} is not valid TOML ({' '.join(str(exc).split())})",
                       "fix the syntax at the position shown") from None


def key_path(loc) -> str:
    """('radio', 0, 'sf') -> 'radio[0].sf'; ('forwarders', 'mqtt', 'port') -> 'forwarders.mqtt.port'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_TYPE_NAMES = {"int_type": "int", "string_type": "str", "bool_type": "bool", "float_type": "number",
               "list_type": "list", "dict_type": "table", "model_type": "table", "model_attributes_type": "table",
               "int_from_float": "int", "finite_number": "finite number", "tuple_type": "list"}


class Style:
    """How one file names its keys. The default is `file: a.b[0].c problem — fix`."""

    def __init__(self, file):
        self.file = file

    def where(self, loc) -> str:
        return key_path(loc)

    def line(self, loc, problem: str, fix: str) -> SenError:
        return SenError(f"{self.file}: {self.where(loc)} {problem}", fix)

    def unknown(self, loc, key, known, near) -> SenError:
        return self.line((*loc, key), "is not a known key", f"remove it or use one of: {', '.join(sorted(known))}")

    def not_table(self, loc, value: str) -> SenError:
        return self.line(loc, f"must be a table, not {value}", f"write it as [{key_path(loc)}] with its keys below")

    def missing(self, loc) -> SenError:
        table = key_path(loc[:-1]) or "top level"
        return self.line(loc, "is missing", f"add `{loc[-1]} = …` under [{table}]")

    def wrong_type(self, loc, tname: str, value) -> SenError:
        table = key_path(loc[:-1]) or "top level"
        return self.line(loc, f"must be a {tname}, not {short(value)}", f"fix `{loc[-1]}` under [{table}]")


def _loc(err) -> tuple:
    # Union members and tagged choices add their own names to loc; they are not keys.
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in ("int", "float", "str",
                                                                                          "list", "dict"))))


def explain(exc: ValidationError, style: Style, prefix: tuple = ()) -> SenError:
    """The first problem of a ValidationError as one SenError line in the file's style."""
    errors = exc.errors()
    # A typo or a custom check says more than a knock-on "is missing" further down the list.
    rank = {"extra_forbidden": 0, "sen": 1}
    err = min(errors, key=lambda e: rank.get(e["type"], 2))
    loc, ctx, kind = prefix + _loc(err), err.get("ctx") or {}, err["type"]
    if kind == "extra_forbidden":
        if "known" in ctx:
            return style.unknown(loc, ctx["key"], ctx["known"], ctx["near"])
        return style.unknown(loc[:-1], loc[-1], [], [])
    if kind == "sen":
        if ctx.get("shown"):
            return SenError(f"{style.file}: {ctx['shown']} {ctx['problem']}", ctx["fix"])
        return style.line((*loc, ctx["key"]) if ctx.get("key") else loc, ctx["problem"], ctx["fix"])
    if kind == "not_table":
        return style.not_table(loc, ctx["value"])
    if kind == "missing":
        return style.missing(loc)
    if kind == "literal_error":
        return style.line(loc, f"{short(err['input'])} is unknown", f"use one of: {ctx.get('expected', '')}")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return style.line(loc, f"{short(err['input'])} is out of range", err["msg"].lower())
    tname = _TYPE_NAMES.get(kind) or "valid value"
    if tname == "table":
        return style.not_table(loc, short(err["input"]))
    return style.wrong_type(loc, tname, err["input"])


def check(model: type[BaseModel], data, style: Style, prefix: tuple = (), context: dict | None = None):
    """model.model_validate(data), a failure raised as one SenError line."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise explain(exc, style, prefix) from None


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
