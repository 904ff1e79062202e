"""The emulated ESP32's NVS partition: committed data on disk, writes pending until commit.

Pending writes live only as long as the interpreter that made them: a reset, deep sleep or
power cut drops them (Board.on_boot calls drop_pending). commit() writes the namespace's
pending changes to the file atomically (temp file + rename), so a power cut at any instant
leaves either the old or the new committed state, as NVS's own page journal does.
"""
import json
import os
from pathlib import Path

NOT_FOUND = -4354        # ESP_ERR_NVS_NOT_FOUND (0x1102)
INVALID_LENGTH = -4364   # ESP_ERR_NVS_INVALID_LENGTH (0x110c)
KEY_TOO_LONG = -4361     # ESP_ERR_NVS_KEY_TOO_LONG (0x1109)
_DELETED = object()


class NvsStore:
    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.committed = {}   # ns -> key -> ["i32", int] | ["blob", hex]
        self.pending = {}     # ns -> key -> value | _DELETED
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
        changes = self.pending.pop(ns, {})
        if not changes:
            return
        space = self.committed.setdefault(ns, {})
        for k, v in changes.items():
            if v is _DELETED:
                space.pop(k, None)
            else:
                space[k] = v
        self._save()

    def drop_pending(self):
        self.pending = {}

    def _save(self):
        if not self.path:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.committed, sort_keys=True))
        os.replace(tmp, self.path)
