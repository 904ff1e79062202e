"""Per-node 128-bit keys, kept in a JSON file readable only by the gateway user.

File: {"nodes": {"<node id>": {"key": "<32 hex>", "status": "active"|"revoked",
"updated": <unix s>}}}. Writes go to a temp file and are renamed in, so a crash never
leaves half a key file.
"""
import json
import os
import secrets
import time
from pathlib import Path

from sen.errors import SenError

KEY_LEN = 16


def parse_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise SenError(f"{where}: key is not hex", "give the node key as 32 hex digits") from None
    if len(key) != KEY_LEN:
        raise SenError(f"{where}: key has {len(key)} bytes", "node keys are 16 bytes (32 hex digits)")
    return key


def parse_node_id(value, where: str) -> int:
    try:
        node = int(value)
    except (TypeError, ValueError):
        raise SenError(f"{where}: node id {value!r} is not a number", "use a node id 1..65535") from None
    if not 0 < node < 65536:
        raise SenError(f"{where}: node id {node} is out of range", "use a node id 1..65535")
    return node


class KeyStore:
    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        self._nodes: dict[int, dict] = {}
        self._mtime = None
        if not self.path.exists():
            if not create:
                raise SenError(f"key file {self.path} does not exist",
                               "create it with `sen gateway keys add NODE -c gateway.toml` or fix [keys] file")
            self._save()
        self.reload()

    def reload(self):
        try:
            data = json.loads(self.path.read_text())
            nodes = data["nodes"]
            self._nodes = {parse_node_id(k, str(self.path)): dict(v) for k, v in nodes.items()}
            for node, entry in self._nodes.items():
                parse_key(entry["key"], f"{self.path} node {node}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SenError(f"key file {self.path} is unreadable ({type(exc).__name__})",
                           "restore it from backup or re-import keys with `sen gateway keys import`") from None
        self._mtime = self.path.stat().st_mtime_ns
        self._cache = {n: bytes.fromhex(e["key"]) for n, e in self._nodes.items() if e.get("status") == "active"}

    def reload_if_changed(self) -> set[int]:
        """The CLI edits the file while the service runs; pick the change up cheaply.
        Returns the nodes whose key changed (rotated, added or revoked)."""
        try:
            if self.path.stat().st_mtime_ns != self._mtime:
                before = dict(self._cache)
                self.reload()
                return {n for n in set(before) | set(self._cache) if before.get(n) != self._cache.get(n)}
        except (OSError, SenError):
            pass  # keep the keys we have; a broken edit must not stop reception
        return set()

    def get(self, node_id: int) -> bytes | None:
        return self._cache.get(node_id)

    def entries(self) -> dict[int, dict]:
        return dict(sorted(self._nodes.items()))

    def _save(self):
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"nodes": {str(k): v for k, v in sorted(self._nodes.items())}}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _set(self, node_id: int, key: bytes, status="active"):
        self._nodes[node_id] = {"key": key.hex(), "status": status, "updated": round(time.time(), 3)}
        self._save()
        self.reload()

    def add(self, node_id: int, key: bytes | None = None) -> bytes:
        if node_id in self._nodes and self._nodes[node_id].get("status") == "active":
            raise SenError(f"node {node_id} already has a key", "use `sen gateway keys rotate` to replace it")
        key = key or secrets.token_bytes(KEY_LEN)
        self._set(node_id, key)
        return key

    def rotate(self, node_id: int, key: bytes | None = None) -> bytes:
        if node_id not in self._nodes:
            raise SenError(f"node {node_id} has no key", "add it with `sen gateway keys add`")
        key = key or secrets.token_bytes(KEY_LEN)
        self._set(node_id, key)
        return key

    def revoke(self, node_id: int):
        if node_id not in self._nodes:
            raise SenError(f"node {node_id} has no key", "check the id with `sen gateway keys list`")
        self._nodes[node_id]["status"] = "revoked"
        self._nodes[node_id]["updated"] = round(time.time(), 3)
        self._save()
        self.reload()

    def import_file(self, path: Path) -> int:
        """Import `node_id key_hex` lines or a JSON object {node_id: key_hex}; returns the count."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SenError(f"cannot read {path}: {exc.strerror}", "give the file the provisioning step wrote") from None
        pairs = []
        stripped = text.lstrip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                raise SenError(f"{path} is not valid JSON", "give {\"node id\": \"hex key\"} or `node key` lines") from None
            obj = obj.get("nodes", obj)
            for k, v in obj.items():
                pairs.append((k, v["key"] if isinstance(v, dict) else v))
        else:
            for n, line in enumerate(text.splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.replace(",", " ").split()
                if len(parts) != 2:
                    raise SenError(f"{path}:{n}: expected `node_id key_hex`", "one node per line")
                pairs.append(tuple(parts))
        parsed = [(parse_node_id(k, str(path)), parse_key(str(v), f"{path} node {k}")) for k, v in pairs]
        for node, key in parsed:
            self._nodes[node] = {"key": key.hex(), "status": "active", "updated": round(time.time(), 3)}
        self._save()
        self.reload()
        return len(parsed)
