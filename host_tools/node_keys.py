"""Node keys at provisioning: fresh 128-bit keys, registered with a gateway's key store or
written to a provisioning record (mode 0600) that the operator imports with
`sen gateway keys import`. Keys are never printed unless asked."""
import json
import os
import secrets
import time
from pathlib import Path

from sen.errors import SenError

KEY_LEN = 16


def new_key() -> bytes:
    return secrets.token_bytes(KEY_LEN)


def write_record(directory: Path, node_id: int, key: bytes, kind: str, board: str) -> Path:
    """One JSON record per node, created 0600 from the start (never world-readable, even briefly)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"node-{node_id}.json"
    record = {"nodes": {str(node_id): {"key": key.hex(), "kind": kind, "board": board,
                                       "provisioned": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)
    return path


def register_with_gateway(gateway_config: Path, node_id: int, key: bytes) -> str:
    """Put the key into the gateway's key store; returns 'added', 'rotated' or 'unchanged'."""
    import tomllib

    from sen.gateway.key_store import KeyStore  # lazy: CLI start-up

    try:
        raw = tomllib.loads(Path(gateway_config).read_text())
    except OSError as exc:
        raise SenError(f"cannot read gateway config {gateway_config}: {exc.strerror}", "pass the gateway's gateway.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise SenError(f"{gateway_config} is not valid TOML ({exc})", "fix the file") from None
    keys_file = raw.get("keys", {}).get("file")
    if not keys_file:
        raise SenError(f"{gateway_config}: keys.file is missing", 'add [keys] file = "keys.json"')
    store = KeyStore(Path(gateway_config).parent / keys_file, create=True)
    current = store.entries().get(node_id)
    if current is None:
        store.add(node_id, key)
        return "added"
    if current.get("key") == key.hex() and current.get("status") == "active":
        return "unchanged"
    store.rotate(node_id, key)
    return "rotated"
