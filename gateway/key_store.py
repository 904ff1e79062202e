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
        """Import `node_id key_hex` lines or a JSON object {node_id: key_hex}; returns the count.
        All or nothing: any mistake in the file is one SenError and nothing is imported."""
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SenError(f"cannot read {path}: {exc.strerror}", "give the file the provisioning step wrote") from None
        except UnicodeDecodeError:
            raise SenError(f"{path} is not a text file", "give {\"node id\": \"hex key\"} JSON or `node key` lines") from None
        if mode & 0o077:
            raise SenError(f"{path} holds node keys and is readable by others (mode {mode & 0o777:o})",
                           f"chmod 600 {path} (and keep key files out of shared directories), then import again")
        pairs = []
        if text.lstrip().startswith(("{", "[")):
            pairs = self._json_pairs(path, text)
        else:
            for n, line in enumerate(text.splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.replace(",", " ").split()
                if len(parts) != 2:
                    raise SenError(f"{path}:{n}: expected `node_id key_hex`", "one node per line")
                pairs.append((parts[0], parts[1], f"{path}:{n}"))
        parsed, seen = [], {}
        for k, v, where in pairs:
            node = parse_node_id(k, where)
            if node in seen:
                raise SenError(f"{where}: node {node} appears twice in {path} (first at {seen[node]})",
                               "keep one key per node in the import file")
            seen[node] = where
            parsed.append((node, parse_key(v if isinstance(v, str) else "", f"{where} node {node}")))
        for node, key in parsed:
            self._nodes[node] = {"key": key.hex(), "status": "active", "updated": round(time.time(), 3)}
        self._save()
        self.reload()
        return len(parsed)

    @staticmethod
    def _json_pairs(path: Path, text: str) -> list:
        def no_dupes(items):
            keys = [k for k, _ in items]
            for k in keys:
                if keys.count(k) > 1:
                    raise SenError(f"{path}: node {k} appears twice", "keep one key per node in the import file")
            return dict(items)
        try:
            obj = json.loads(text, object_pairs_hook=no_dupes)
        except ValueError as exc:
            raise SenError(f"{path} is not valid JSON ({exc})", "give {\"node id\": \"hex key\"} or `node key` lines") from None
        if isinstance(obj, dict) and isinstance(obj.get("nodes"), dict):
            obj = obj["nodes"]
        if not isinstance(obj, dict):
            raise SenError(f"{path}: expected a JSON object of node id -> key", 'e.g. {"17": "00112233445566778899aabbccddeeff"}')
        out = []
        for k, v in obj.items():
            if isinstance(v, dict):
                v = v.get("key")
            if not isinstance(v, str):
                raise SenError(f"{path}: node {k}: key must be a hex string", "give the node key as 32 hex digits")
            out.append((k, v, str(path)))
        return out
