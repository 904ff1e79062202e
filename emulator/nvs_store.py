"""The emulated ESP32's NVS partition: committed data on disk, writes pending until commit.

Pending writes live only as long as the interpreter that made them: a reset, deep sleep or
power cut drops them (Board.on_boot calls drop_pending). commit() writes the namespace's
pending changes to the file atomically (temp file + rename), so a power cut at any instant
leaves either the old or the new committed state, as NVS's own page journal does.
"""
import json
import os
from pathlib import Path

# What a commit costs in flash time. ESP-IDF NVS stores 32-byte entries in 4 KiB pages of 126
# entries: a blob takes a header entry plus one per 32 bytes, an i32 one entry, and each new
# entry also updates the page's entry-state bitmap. When a page is full the next write goes to a
# fresh page, which NVS erases first. Times are the W25Q32JV's typical figures (Winbond
# W25Q32JV datasheet, AC electrical characteristics): first byte program tBP1 30 µs, each
# further byte tBP2 2.5 µs, 4 KiB sector erase tSE 45 ms; the CPU waits on the flash meanwhile
# (the ESP32 runs from the same flash through its cache, which is off during a write).
ENTRY_BYTES = 32
ENTRIES_PER_PAGE = 126
T_FIRST_BYTE_US = 30.0
T_NEXT_BYTE_US = 2.5
T_SECTOR_ERASE_US = 45_000.0


def program_us(n_bytes):
    return T_FIRST_BYTE_US + T_NEXT_BYTE_US * (n_bytes - 1) if n_bytes > 0 else 0.0


def entries_of(entry):
    """NVS entries one stored value takes."""
    if entry[0] == "i32":
        return 1
    return 1 + (len(entry[1]) // 2 + ENTRY_BYTES - 1) // ENTRY_BYTES

NOT_FOUND = -4354        # ESP_ERR_NVS_NOT_FOUND (0x1102)
INVALID_LENGTH = -4364   # ESP_ERR_NVS_INVALID_LENGTH (0x110c)
KEY_TOO_LONG = -4361     # ESP_ERR_NVS_KEY_TOO_LONG (0x1109)
_DELETED = object()


class NvsStore:
    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.committed = {}   # ns -> key -> ["i32", int] | ["blob", hex]
        self.pending = {}     # ns -> key -> value | _DELETED
        self.page_fill = 0    # entries used in the page NVS writes to now
        self.erases = 0       # pages erased (wear), since this store was opened
        self.entries_written = 0
        if self.path and self.path.exists():
            self.committed = json.loads(self.path.read_text() or "{}")

    @staticmethod
    def _check_name(name):
        if not isinstance(name, str) or not 0 < len(name) <= 15:
            raise OSError(KEY_TOO_LONG, "ESP_ERR_NVS_KEY_TOO_LONG")

    def open(self, ns):
        self._check_name(ns)

    def set(self, ns, key, kind, value):
        self._check_name(key)
        if kind == "i32":
            value = int(value)
            if not -(1 << 31) <= value < (1 << 31):
                raise OverflowError("value does not fit in 32 bits")
            entry = ["i32", value]
        else:
            entry = ["blob", bytes(value).hex()]
        self.pending.setdefault(ns, {})[key] = entry

    def _lookup(self, ns, key):
        p = self.pending.get(ns, {})
        if key in p:
            return None if p[key] is _DELETED else p[key]
        return self.committed.get(ns, {}).get(key)

    def get(self, ns, key, kind, size=None):
        e = self._lookup(ns, key)
        if e is None or e[0] != kind:
            raise OSError(NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        if kind == "i32":
            return e[1]
        data = bytes.fromhex(e[1])
        if size is not None and len(data) > size:
            raise OSError(INVALID_LENGTH, "ESP_ERR_NVS_INVALID_LENGTH")
        return data

    def erase(self, ns, key):
        if self._lookup(ns, key) is None:
            raise OSError(NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        self.pending.setdefault(ns, {})[key] = _DELETED

    def commit(self, ns):
        """Apply the namespace's pending writes; returns the flash time they take (µs)."""
        changes = self.pending.pop(ns, {})
        if not changes:
            return 0.0
        space = self.committed.setdefault(ns, {})
        us = 0.0
        for k, v in changes.items():
            if v is _DELETED:
                space.pop(k, None)
                us += program_us(1)  # the old entry's state bits
            else:
                space[k] = v
                us += self._write_entries(entries_of(v))
        self._save()
        return us

    def _write_entries(self, n):
        us = 0.0
        for _ in range(n):
            if self.page_fill >= ENTRIES_PER_PAGE:
                us += T_SECTOR_ERASE_US
                self.erases += 1
                self.page_fill = 0
            self.page_fill += 1
            self.entries_written += 1
            # the entry, its state bits, and (for a replaced value) the old entry's state bits
            us += program_us(ENTRY_BYTES) + 2 * program_us(1)
        return us

    def drop_pending(self):
        self.pending = {}

    def _save(self):
        if not self.path:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.committed, sort_keys=True))
        os.replace(tmp, self.path)
