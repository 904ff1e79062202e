"""Circular 10/2021/TT-BTNMT forwarder: one text file per sample, pushed over FTP into
<Station>/yyyy/MM/dd, named <Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt, one
tab-separated line per parameter: symbol, value, unit, yyyyMMddHHmmss, status.

Times are Vietnam local time (UTC+7, no daylight saving). Status: 00 measuring,
01 calibrating (node in calibration mode), 02 device error (missing, stuck or out of range).

The name's timestamp is the measurement time, at 1-second resolution, so two samples of one
station can share a name (two nodes mapped to one station, or a batch that splits a
station's parameters). Plain STOR would let the second replace the first at the receiver.
Instead the forwarder reads the file already there and merges by parameter symbol: new
symbols are added, a symbol already present takes the newer value (a re-sent or
recalibrated sample). A re-send that changes nothing is not uploaded again, so at-least-once
delivery never duplicates lines.
"""
import ftplib
import io
import logging
from datetime import datetime, timedelta, timezone

from sen.channels import Q_CALIBRATING, Q_MISSING, Q_OUT_OF_RANGE, Q_STUCK, Q_WARMING_UP
from sen.gateway.forwarders.base import Forwarder

log = logging.getLogger("sen.gateway.forward.circular10")
VN = timezone(timedelta(hours=7))
# channel -> (symbol, unit as written in the files). Temp, pH, RH, P, PM10 and PM2,5 are the
# symbols seen in published implementations; the others follow the same style.
SYMBOLS = {
    "air_temp": ("Temp", "oC"), "water_temp": ("Temp", "oC"), "rh": ("RH", "%"), "pressure": ("P", "hPa"),
    "pm1": ("PM1", "ug/m3"), "pm25": ("PM2,5", "ug/m3"), "pm10": ("PM10", "ug/m3"), "ph": ("pH", "-"),
    "conductivity": ("EC", "uS/cm"), "turbidity": ("Turbidity", "NTU"), "dissolved_oxygen": ("DO", "mg/L"),
    "water_level": ("Level", "m"), "rain_depth": ("Rain", "mm"),
}


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, VN).strftime("%Y%m%d%H%M%S")


def status(qflags: int) -> str:
    if qflags & Q_CALIBRATING:
        return "01"
    if qflags & (Q_MISSING | Q_STUCK | Q_OUT_OF_RANGE | Q_WARMING_UP):
        return "02"
    return "00"


def file_for(sample, province: str, facility: str, station: str) -> tuple[str, str, str]:
    """(directory, file name, content) for one sample; content is "" when no channel maps."""
    ts = stamp(sample.time)
    lines = []
    for r in sample.readings:
        spec = SYMBOLS.get(r.channel.name)
        if spec is None:
            continue
        value = "" if r.value is None else f"{r.value:.{r.channel.decimals}f}"
        lines.append(f"{spec[0]}\t{value}\t{spec[1]}\t{ts}\t{status(r.qflags)}")
    d = datetime.fromtimestamp(sample.time, VN)
    return (f"{station}/{d:%Y}/{d:%m}/{d:%d}", f"{province}_{facility}_{station}_{ts}.txt",
            "\r\n".join(lines) + "\r\n" if lines else "")


def merge(existing: str, new: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Merge two files' lines by symbol (first field): existing order kept, a symbol in both
    takes the new line, new symbols go last. Returns the content and the symbols whose value
    changed as (symbol, old value, new value)."""
    order: list[str] = []
    lines: dict[str, str] = {}
    for text in (existing, new):
        for line in text.splitlines():
            if not line.strip():
                continue
            sym = line.split("\t", 1)[0]
            if sym not in lines:
                order.append(sym)
            lines[sym] = line
    changed = []
    old = {ln.split("\t", 1)[0]: ln for ln in existing.splitlines() if ln.strip()}
    for sym, line in lines.items():
        if sym in old and old[sym] != line:
            changed.append((sym, _field(old[sym], 1), _field(line, 1)))
    return ("\r\n".join(lines[s] for s in order) + "\r\n" if order else ""), changed


def _field(line: str, i: int) -> str:
    parts = line.split("\t")
    return parts[i] if len(parts) > i else ""


class Circular10Forwarder(Forwarder):
    kind = "circular10"
    batch_readings = 600

    def __init__(self, host: str, port: int = 21, user: str = "anonymous", password: str = "", province: str = "DN",
                 facility: str = "SEN", nodes: dict | None = None, timeout: float = 15.0):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.province, self.facility = province, facility
        self.nodes = nodes or {}
        self.timeout = timeout
        self.ftp = None
        self.made_dirs: set[str] = set()

    def station(self, node_id: int) -> str:
        return self.nodes.get(node_id, {}).get("station") or f"NODE{node_id}"

    def _connect(self):
        if self.ftp is None:
            ftp = ftplib.FTP(timeout=self.timeout)
            ftp.connect(self.host, self.port)
            ftp.login(self.user, self.password)
            self.ftp = ftp
            self.made_dirs.clear()
        return self.ftp

    def _mkdirs(self, ftp, path: str):
        if path in self.made_dirs:
            return
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if sub[1:] in self.made_dirs:
                continue
            try:
                ftp.mkd(sub)
            except ftplib.error_perm as exc:
                if not str(exc).startswith("550"):  # 550: exists
                    raise
            self.made_dirs.add(sub[1:])

    def _retr(self, ftp, path: str) -> str | None:
        """The file's text at the receiver, or None when there is none (550)."""
        buf = io.BytesIO()
        try:
            ftp.retrbinary(f"RETR {path}", buf.write)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise
        return buf.getvalue().decode("utf-8", errors="replace")

    def send(self, samples):
        files: dict[tuple[str, str], str] = {}
        for s in samples:  # samples of one station and second in this batch: one file
            folder, name, content = file_for(s, self.province, self.facility, self.station(s.node_id))
            if content:
                files[(folder, name)] = merge(files.get((folder, name), ""), content)[0]
        try:
            ftp = self._connect()
            for (folder, name), content in files.items():
                path = f"/{folder}/{name}"
                self._mkdirs(ftp, folder)
                existing = self._retr(ftp, path)
                if existing is not None:
                    content, changed = merge(existing, content)
                    if content == existing:
                        continue  # a re-send: the receiver already has exactly this
                    if changed:
                        log.info("circular10 %s: replaced %s (re-sent or recalibrated sample, or two nodes of one "
                                 "station reporting the same parameter)", name,
                                 ", ".join(f"{sym} {a}->{b}" for sym, a, b in changed))
                ftp.storbinary(f"STOR {path}", io.BytesIO(content.encode()))
        except (OSError, EOFError, ftplib.Error):
            self.close()
            raise

    def close(self):
        if self.ftp is not None:
            try:
                self.ftp.quit()
            except Exception:
                self.ftp.close()
            self.ftp = None
