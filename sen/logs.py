"""One logging set-up for every `sen` command: JSON lines under systemd, text on a terminal.

Under systemd (INVOCATION_ID set, or JOURNAL_STREAM naming our stderr, see systemd.exec(5))
each record is one JSON object on stderr, which journald keeps as one entry
(`journalctl -u sen-gateway -o cat | jq`); data passed with `extra=` become fields. On a
terminal or a pipe it is one readable line. SEN_LOG_FORMAT=json|text overrides the choice.
"""
import json
import logging
import os
import sys

_RECORD_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonLogFormatter(logging.Formatter):
    def format(self, record):
        out = {"t": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        for k, v in vars(record).items():
            if k not in _RECORD_KEYS and k not in out:
                out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def under_systemd(stream=None) -> bool:
    if os.environ.get("INVOCATION_ID"):
        return True
    js = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in js:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return js == f"{st.st_dev}:{st.st_ino}"


def wants_json(stream=None) -> bool:
    forced = os.environ.get("SEN_LOG_FORMAT", "").lower()
    if forced in ("json", "text"):
        return forced == "json"
    return under_systemd(stream)


def setup(level="INFO") -> None:
    """Route every logger to stderr in the chosen format, at this level (name or number)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if wants_json(sys.stderr) else logging.Formatter(TEXT_FORMAT, "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(level)
