"""`sen gateway export`: stored readings as `time,node,channel,value,flags` rows for the
calibration tools (flags = the qflags integer), filtered in SQL."""
from datetime import datetime, timezone

from sen.channels import BY_ID, BY_NAME
from sen.errors import SenError
from sen.gateway.store import connect

HEADER = ["time", "node", "channel", "value", "flags"]


def parse_time(text, opt):
    """An ISO date/time as a Unix time (UTC unless it gives an offset); `opt` names the option in errors."""
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise SenError(f"{opt} {text!r} is not an ISO date/time", f"e.g. {opt} 2026-11-01T00:00:00+07:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def check_channels(channels):
    for c in channels:
        if c not in BY_NAME:
            raise SenError(f"--channel {c} is unknown", f"use channel names such as {', '.join(list(BY_NAME)[:6])}")


def export_rows(cfg, nodes=(), channels=(), since=None, until=None, values="raw"):
    """Rows in time order; `since`/`until` as ISO text. Checks every argument before reading."""
    check_channels(channels)
    where, args = ["1"], []
    if nodes:
        where.append(f"node_id IN ({','.join('?' * len(nodes))})")
        args += nodes
    if channels:
        where.append(f"channel IN ({','.join('?' * len(channels))})")
        args += [BY_NAME[c].id for c in channels]
    for opt, val, op in (("--since", since, ">="), ("--until", until, "<")):
        t = parse_time(val, opt)
        if t is not None:
            where.append(f"time {op} ?")
            args.append(t)
    col = "raw" if values == "raw" else "value"
    con = connect(cfg.store_path, readonly=True)
    return _rows(con, f"SELECT time, node_id, channel, {col}, qflags FROM readings WHERE {' AND '.join(where)}"
                      " ORDER BY time, node_id, channel", args)


def _rows(con, sql, args):
    try:
        for t, nd, ch, v, q in con.execute(sql, args):
            yield [datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z"), nd,
                   BY_ID[ch].name, "" if v is None else v, q]
    finally:
        con.close()
