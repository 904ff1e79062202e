"""SQLite store (WAL): frames, every radio copy, readings raw and calibrated, node counter
state, rejection counts, forwarder cursors and the raw-log offset processed so far.

One writer (the service loop); readers (status, forwarders, metrics) open their own
connections. Durability comes from the raw log: the store runs synchronous=NORMAL, and
anything a power cut rolls back is re-processed from the log because the processed
offset lives in the same transaction.
"""
import json
import sqlite3
import time
from itertools import chain
from pathlib import Path

from sen.errors import SenError
from sen.gateway.calibrate import expand_compact
from sen.gateway.counter_state import NodeCounters
from sen.gateway.disk import disk_full_problem
from sen.scaling import IDENTITY, sql_physical

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
CREATE TABLE IF NOT EXISTS nodes(
    node_id INTEGER PRIMARY KEY, last INTEGER, mask INTEGER, reboots INTEGER, lost INTEGER,
    accepted INTEGER, late INTEGER, duplicates INTEGER, last_seen REAL, rssi REAL, snr REAL,
    battery REAL, qflags INTEGER, mic_failures INTEGER DEFAULT 0, epoch INTEGER DEFAULT 0,
    resent_samples INTEGER DEFAULT 0);
-- One row per accepted frame, with the first copy's rx metadata; its readings are the id
-- range [first_reading, first_reading + n_readings). Per-node time series go through here
-- (unique index node, counter; counters rise with time), so readings need no second index.
-- Rows are appended in arrival order (rowid); only the small index is inserted at random,
-- which costs a third less per frame than a WITHOUT ROWID table keyed by (node, counter).
CREATE TABLE IF NOT EXISTS frames(
    node_id INTEGER, counter INTEGER, raw_offset INTEGER, rx_time REAL, flags INTEGER,
    late INTEGER, frame BLOB, first_reading INTEGER, n_readings INTEGER, gateway_id TEXT, radio TEXT,
    freq_hz INTEGER, sf INTEGER, bw_hz INTEGER, rssi REAL, snr REAL, UNIQUE(node_id, counter));
-- further copies of a frame heard by other radios or gateways (dedupe)
CREATE TABLE IF NOT EXISTS rx(
    node_id INTEGER, counter INTEGER, gateway_id TEXT, radio TEXT, time REAL, freq_hz INTEGER,
    sf INTEGER, bw_hz INTEGER, rssi REAL, snr REAL, raw_offset INTEGER);
CREATE INDEX IF NOT EXISTS rx_frame ON rx(node_id, counter);
CREATE TABLE IF NOT EXISTS readings(
    id INTEGER PRIMARY KEY, node_id INTEGER, counter INTEGER, sample INTEGER, time REAL,
    channel INTEGER, raw REAL, value REAL, qflags INTEGER, cal TEXT);
CREATE TABLE IF NOT EXISTS rejections(reason TEXT PRIMARY KEY, count INTEGER);
CREATE TABLE IF NOT EXISTS outbox(
    name TEXT PRIMARY KEY, cursor INTEGER, sent INTEGER DEFAULT 0, dropped INTEGER DEFAULT 0,
    last_ok REAL, last_error TEXT, last_error_time REAL);
-- ids an upstream assigned to what a forwarder created there (SensorThings Things, Datastreams …)
CREATE TABLE IF NOT EXISTS upstream_ids(forwarder TEXT, key TEXT, id TEXT, PRIMARY KEY(forwarder, key));
CREATE TABLE IF NOT EXISTS pending_config(node_id INTEGER PRIMARY KEY, config TEXT, created REAL);
-- the last pending change per node that an uplink showed applied (sen.gateway.config_evidence)
-- ADR (sen/adr.py, gateway/link_history.py): per node, the best copy of its last 20 new
-- uplinks as JSON, and the link setting last commanded; a store made before it gets it here
CREATE TABLE IF NOT EXISTS link_history(node_id INTEGER PRIMARY KEY, last_counter INTEGER, frames TEXT,
    commanded_sf INTEGER, commanded_backoff INTEGER, commanded_from_sf INTEGER, changes INTEGER DEFAULT 0,
    updated REAL, source TEXT);
-- the operator's SF pins (`sen gateway node-config NODE --sf N`), written by another process
CREATE TABLE IF NOT EXISTS link_pin(node_id INTEGER PRIMARY KEY, sf INTEGER);
CREATE TABLE IF NOT EXISTS config_confirmed(node_id INTEGER PRIMARY KEY, config TEXT, created REAL,
    confirmed REAL, counter INTEGER, evidence TEXT);
"""

NODE_COLS = ("last", "mask", "reboots", "lost", "accepted", "late", "duplicates")
# columns added after the first release, with their definitions, for stores made before them
ADDED_COLUMNS = {"nodes": {"resent_samples": "INTEGER DEFAULT 0"},
                 # who chose the setting of the node's last ACK: central, own, pinned (gateway/ack.py)
                 "link_history": {"source": "TEXT"}}
FRAME_ROWS_PER_INSERT = 20  # multi-row INSERTs: a third less per frame than one row per statement
COMPACT_FRAMES_PER_INSERT = 10
# Every batch rewrites most pages of the frames (node, counter) index (a batch holds frames
# of most nodes), so checkpointing every 1,000 pages (SQLite's default) copies those pages
# into the database every other batch of a replay; 10,000 pages (40 MB of WAL) copies them a
# tenth as often: 8 % faster replay at 100,000 frames. The live service checkpoints from
# its own thread instead (start_checkpointer).
WAL_AUTOCHECKPOINT_PAGES = 10_000
MAX_COMPACT_SHAPES = 64  # channel sets with their own compact statements (a fleet has a handful)
READINGS_INSERT = ("INSERT INTO readings(id, node_id, counter, sample, time, channel, raw, value, qflags, cal)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?)")


REBUILD_FIX = ("stop the gateway, move {path} aside (with its -wal and -shm files) and run `sen gateway rebuild -c "
               "gateway.toml`, which rebuilds the store from the raw log")


def damaged(exc: BaseException) -> bool:
    """Is this SQLite error a damaged file (as opposed to a locked, missing or read-only one)?"""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (11, 26) or (isinstance(exc, sqlite3.DatabaseError) and any(
        w in str(exc) for w in ("malformed", "not a database", "corrupt")))


def open_error(path: Path, exc: BaseException) -> SenError:
    """One line naming why the store at `path` cannot be used, with the fix that applies."""
    full = disk_full_problem(path.parent, exc)
    if full:
        return SenError(f"cannot open the store {path}: {full}", f"free space in {path.parent}")
    if damaged(exc):
        return SenError(f"the store {path} is damaged ({' '.join(str(exc).split())})", REBUILD_FIX.format(path=path))
    return SenError(f"cannot open the store {path}: {exc}", "set [gateway] data_dir to a writable directory")


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    path = Path(path)
    if readonly and not path.exists():
        raise SenError(f"no gateway store at {path}", "start the gateway once with `sen gateway run -c gateway.toml`")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA busy_timeout=30000")
        if not readonly:
            con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    except (sqlite3.Error, OSError) as exc:
        raise open_error(path, exc) from None
    return con


def quick_check(con, path: Path):
    """PRAGMA quick_check at start: a damaged store is named now, not at a later export."""
    try:
        bad = [" ".join(str(r[0]).split()) for r in con.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        bad = [str(exc)]
    if bad != ["ok"]:
        con.close()
        raise SenError(f"the store {path} is damaged (quick_check: {'; '.join(bad)[:200]})", REBUILD_FIX.format(path=path))


class Store:
    compact_readings = True  # commit_batch takes `compact` (the Pipeline expands it for stores without)

    def __init__(self, path: Path, check: bool = True):
        self.path = Path(path)
        self.con = connect(self.path)
        if check:
            quick_check(self.con, self.path)
        try:
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self.con.close()
            raise open_error(self.path, exc) from None

    def _init_schema(self):
        self.con.executescript(SCHEMA)
        self.con.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        for table, cols in ADDED_COLUMNS.items():
            have = {r[1] for r in self.con.execute(f"PRAGMA table_info({table})")}
            for col, decl in cols.items():
                if col not in have:
                    self.con.execute(f"ALTER TABLE {table} ADD COLUMN {col} {decl}")
        self._sql: dict[tuple, str] = {}
        self._compact_seen: set[tuple] = set()
        self.next_reading_id = self.con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM readings").fetchone()[0]

    # --- state loaded at start-up -------------------------------------------------
    def raw_offset(self, cursor_key: str = "raw_offset") -> int:
        row = self.con.execute("SELECT v FROM meta WHERE k=?", (cursor_key,)).fetchone()
        return int(row[0]) if row else 0

    def set_raw_offset(self, offset: int, cursor_key: str = "raw_offset"):
        self.con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (cursor_key, offset))

    def load_states(self) -> dict[int, NodeCounters]:
        rows = self.con.execute(f"SELECT node_id, {', '.join(NODE_COLS)}, epoch FROM nodes"
                                " WHERE last IS NOT NULL OR epoch > 0")
        return {r[0]: NodeCounters(-1 if r[1] is None else r[1], mask_from_db(r[2] or 0), *(x or 0 for x in r[3:]))
                for r in rows}

    def load_state(self, node_id: int) -> NodeCounters | None:
        return self.load_states_for([node_id]).get(node_id)

    def load_states_for(self, node_ids) -> dict[int, NodeCounters]:
        return {n: s for n, s in self.load_states().items() if n in set(node_ids)}

    def frame_bytes(self, node_id: int, counter: int) -> bytes | None:
        row = self.con.execute("SELECT frame FROM frames WHERE node_id=? AND counter=?", (node_id, counter)).fetchone()
        return row[0] if row else None

    def frames_before(self, node_id: int, counter: int, page: int = 16):
        """(counter, rx_time, frame) of the node's stored frames below `counter`, newest
        first, fetched a page at a time so a caller that stops early reads little (and no
        statement stays open into the next write transaction)."""
        while True:
            rows = self.con.execute("SELECT counter, rx_time, frame FROM frames WHERE node_id=? AND counter<?"
                                    " ORDER BY counter DESC LIMIT ?", (node_id, counter, page)).fetchall()
            yield from rows
            if len(rows) < page:
                return
            counter = rows[-1][0]

    def reset_node(self, node_id: int):
        """Forget a node's counters (after a key rotation or re-provisioning); a new epoch
        keeps its restarted counters apart from the old ones in the store."""
        self.con.execute("UPDATE nodes SET last=NULL, mask=0, epoch=COALESCE(epoch, 0) + 1 WHERE node_id=?", (node_id,))
        self.con.execute("DELETE FROM link_history WHERE node_id=?", (node_id,))  # a new node, maybe elsewhere

    # --- the one write transaction per batch --------------------------------------
    def commit_batch(self, *, raw_offset: int, cursor_key: str = "raw_offset", frames: list, rx: list, readings: list,
                     nodes: dict[int, NodeCounters], node_seen: dict[int, tuple], rejections: dict[str, int],
                     mic_failures: dict[int, int], compact: dict[int, list] | None = None,
                     resent: dict[int, int] | None = None, next_reading_id: int | None = None):
        """One transaction. readings: full rows (id, node, counter, sample, time, channel, raw,
        value, qflags, cal). compact: identity-calibrated single-sample frames by their
        channel ids (ascending), as one flat list of (first id, node, counter, time, scaled
        value per channel) per frame; SQLite expands each into its rows (sample 0, raw =
        value = scaled x scale, qflags 0, cal identity), so Python builds no tuple and binds
        a third of the parameters per reading. resent: node -> samples recognised as re-sent.
        """
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            if frames:
                self._insert_rows(con, "frames", frames, FRAME_ROWS_PER_INSERT)
            if rx:
                con.executemany("INSERT INTO rx VALUES (?,?,?,?,?,?,?,?,?,?,?)", rx)
            if readings:
                con.executemany(READINGS_INSERT, readings)
            for chans, flat in (compact or {}).items():
                self._insert_compact(con, chans, flat)
            if nodes:
                # counters, and for nodes heard anew their last-seen figures and re-sent count,
                # in one upsert per node (NULL last_seen: keep the stored figures)
                seen = node_seen or {}
                resent = resent or {}
                none = (None, None, None, None, None)
                con.executemany(
                    "INSERT INTO nodes(node_id, last, mask, reboots, lost, accepted, late, duplicates, epoch,"
                    " last_seen, rssi, snr, battery, qflags, resent_samples) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(node_id) DO UPDATE SET last=excluded.last,"
                    " mask=excluded.mask, reboots=excluded.reboots, lost=excluded.lost,"
                    " accepted=excluded.accepted, late=excluded.late, duplicates=excluded.duplicates,"
                    " epoch=excluded.epoch, last_seen=COALESCE(excluded.last_seen, last_seen),"
                    " rssi=IIF(excluded.last_seen IS NULL, rssi, excluded.rssi),"
                    " snr=IIF(excluded.last_seen IS NULL, snr, excluded.snr),"
                    " battery=COALESCE(excluded.battery, battery),"
                    " qflags=IIF(excluded.last_seen IS NULL, qflags, excluded.qflags),"
                    " resent_samples=COALESCE(resent_samples, 0)+excluded.resent_samples",
                    [(n, s.last, mask_to_db(s.mask), s.reboots, s.lost, s.accepted, s.late, s.duplicates,
                      getattr(s, "epoch", 0), *seen.get(n, none), resent.get(n, 0)) for n, s in nodes.items()])
                node_seen = {n: v for n, v in seen.items() if n not in nodes}
                resent = {n: k for n, k in resent.items() if n not in nodes}
            if node_seen:
                con.executemany(
                    "UPDATE nodes SET last_seen=?, rssi=?, snr=?, battery=COALESCE(?, battery), qflags=? WHERE node_id=?",
                    [(t, rssi, snr, batt, q, n) for n, (t, rssi, snr, batt, q) in node_seen.items()])
            if resent:
                con.executemany("UPDATE nodes SET resent_samples=COALESCE(resent_samples, 0)+? WHERE node_id=?",
                                [(k, n) for n, k in resent.items()])
            if mic_failures:
                con.executemany(
                    "INSERT INTO nodes(node_id, mic_failures) VALUES (?, ?) ON CONFLICT(node_id)"
                    " DO UPDATE SET mic_failures=COALESCE(mic_failures, 0) + excluded.mic_failures",
                    list(mic_failures.items()))
            if rejections:
                con.executemany(
                    "INSERT INTO rejections VALUES (?, ?) ON CONFLICT(reason) DO UPDATE SET count=count+excluded.count",
                    list(rejections.items()))
            con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v",
                        (cursor_key, raw_offset))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:  # SQLite already rolled back on SQLITE_FULL / IOERR
                con.execute("ROLLBACK")
            raise
        if next_reading_id is not None:
            self.next_reading_id = next_reading_id
        elif readings:
            self.next_reading_id = readings[-1][0] + 1

    def _insert_rows(self, con, table: str, rows: list, per: int):
        """executemany of `per` rows per statement, then the rest in one statement."""
        width = len(rows[0])
        full = len(rows) - len(rows) % per
        if full:
            flat = chain.from_iterable
            con.executemany(self._values_sql(table, width, per),
                            [tuple(flat(rows[i:i + per])) for i in range(0, full, per)])
        if full < len(rows):
            con.execute(self._values_sql(table, width, len(rows) - full), tuple(chain.from_iterable(rows[full:])))

    def _values_sql(self, table: str, width: int, k: int) -> str:
        key = (table, width, k)
        sql = self._sql.get(key)
        if sql is None:
            row = "(" + ",".join("?" * width) + ")"
            sql = self._sql[key] = f"INSERT INTO {table} VALUES " + ",".join([row] * k)
        return sql

    def _insert_compact(self, con, chans: tuple, flat: list):
        n = len(chans)
        width = 4 + n
        if chans not in self._compact_seen and len(self._compact_seen) >= MAX_COMPACT_SHAPES:
            con.executemany(READINGS_INSERT, expand_compact({chans: flat}))  # an unusual fleet: no new statements
            return
        self._compact_seen.add(chans)
        per = COMPACT_FRAMES_PER_INSERT * width
        full = len(flat) - len(flat) % per
        if full:
            con.executemany(self._compact_sql(chans, COMPACT_FRAMES_PER_INSERT),
                            [flat[i:i + per] for i in range(0, full, per)])
        if full < len(flat):
            con.executemany(self._compact_sql(chans, 1), [flat[i:i + width] for i in range(full, len(flat), width)])

    def _compact_sql(self, chans: tuple, k: int) -> str:
        key = ("compact", chans, k)
        sql = self._sql.get(key)
        if sql is None:
            width = 4 + len(chans)
            rows = []
            for f in range(k):
                b = f * width  # ?b+1 first id, ?b+2 node, ?b+3 counter, ?b+4 time, then the scaled values
                for i, ch in enumerate(chans):
                    v = sql_physical(f"?{b + 5 + i}", ch)
                    rows.append(f"(?{b + 1}+{i},?{b + 2},?{b + 3},0,?{b + 4},{int(ch)},{v},{v},0,'{IDENTITY}')")
            sql = self._sql[key] = ("INSERT INTO readings(id, node_id, counter, sample, time, channel, raw, value,"
                                    " qflags, cal) VALUES " + ",".join(rows))
        return sql

    # --- small helpers used by CLI and status --------------------------------------
    def set_pending_config(self, node_id: int, config: dict):
        self.con.execute("INSERT INTO pending_config VALUES (?,?,?) ON CONFLICT(node_id) DO UPDATE SET"
                         " config=excluded.config, created=excluded.created", (node_id, json.dumps(config), time.time()))

    def pending_config(self, node_id: int) -> dict | None:
        row = self.con.execute("SELECT config FROM pending_config WHERE node_id=?", (node_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def clear_pending_config(self, node_id: int):
        self.con.execute("DELETE FROM pending_config WHERE node_id=?", (node_id,))

    def pending_configs(self) -> dict[int, tuple[dict, str]]:
        """Every pending change: node -> (config, its stored JSON text for confirm_pending_config)."""
        return {n: (json.loads(c), c) for n, c in self.con.execute("SELECT node_id, config FROM pending_config")}

    def confirm_pending_config(self, node_id: int, config_text: str, counter: int, evidence: dict) -> bool:
        """Clear the pending change and record it as confirmed, only if it is still the change
        that was evidenced (an operator may have queued a new one meanwhile)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute("SELECT created FROM pending_config WHERE node_id=? AND config=?",
                              (node_id, config_text)).fetchone()
            if row is not None:
                con.execute("DELETE FROM pending_config WHERE node_id=?", (node_id,))
                con.execute("INSERT OR REPLACE INTO config_confirmed VALUES (?,?,?,?,?,?)",
                            (node_id, config_text, row[0], time.time(), counter, json.dumps(evidence)))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:  # SQLite already rolled back on SQLITE_FULL / IOERR
                con.execute("ROLLBACK")
            raise
        return row is not None

    def start_checkpointer(self, every_s: float = 2.0):
        """Move WAL checkpoints off the commit path: the writer never checkpoints itself
        (they stall a commit for tens of ms), a background connection does it every few s."""
        import threading
        self.con.execute("PRAGMA wal_autocheckpoint=0")
        self._ckpt_stop = threading.Event()

        def run():
            con = connect(self.path)
            try:
                while not self._ckpt_stop.wait(every_s):
                    try:
                        con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error:
                        pass
            finally:
                con.close()
        self._ckpt = threading.Thread(target=run, name="wal-checkpoint", daemon=True)
        self._ckpt.start()

    def close(self):
        stop = getattr(self, "_ckpt_stop", None)
        if stop is not None:
            stop.set()
            self._ckpt.join(5)
        self.con.close()


def mask_from_db(v: int) -> int:
    return v + (1 << 64) if v < 0 else v


def mask_to_db(v: int) -> int:
    """SQLite integers are signed 64-bit; the window mask uses all 64 bits."""
    return v - (1 << 64) if v >= 1 << 63 else v
