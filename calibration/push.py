"""Hand approved records to a gateway: copy into its records directory, or POST to its HTTP API.

HTTP: each record is POSTed as JSON to <base>/api/calibration/records with the gateway's operator
token (Authorization: Bearer); any 2xx is success. The gateway re-checks schema, hash and status on
arrival, installs the record in its records directory and reloads its calibration.
"""
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from sen.errors import SenError

from .records import default_name, load


def push(paths, gateway: str, token: str | None = None) -> list:
    recs = [load(p) for p in paths]
    drafts = [r for r in recs if r.status != "approved"]
    if drafts:
        r = drafts[0]
        raise SenError(f"{r.path} is a draft ({r.id}); only approved records go to a gateway",
                       f"review it with `sen cal report` and run `sen cal approve {r.path} --by NAME`")
    from .node_frames import check_applicable, frame_profile
    for r in recs:
        check_applicable(r.id, r.node, r.inputs,
                         r.doc.get("node_frame") or frame_profile(r.node, r.channel, r.inputs, None), "push")
    url = urlparse(gateway)
    if url.scheme in ("http", "https"):
        if not token:
            raise SenError("pushing over HTTP needs the gateway's operator token",
                           "give --token (the gateway's [status] token_file) or set SEN_GATEWAY_TOKEN")
        return [_post(r, gateway.rstrip("/") + "/api/calibration/records", token) for r in recs]
    target = Path(url.path if url.scheme == "file" else gateway)
    if target.exists() and not target.is_dir():
        raise SenError(f"{gateway} is a file, not a records directory", "give the gateway's records directory")
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in recs:
        dest = target / default_name(r.node, r.channel, r.version)
        if dest.exists():
            there = json.loads(dest.read_text())
            if there.get("hash") != r.doc["hash"]:
                raise SenError(f"{dest} already holds a different {r.id}",
                               "a new curve needs a new version: re-fit into the records directory")
            if there.get("status") == "approved":
                lines.append(f"{r.id}: already on the gateway ({dest})")
                continue
        tmp = dest.with_suffix(".json.tmp")
        shutil.copyfile(r.path, tmp)
        tmp.replace(dest)  # atomic, so a gateway scanning the directory never reads half a file
        lines.append(f"pushed {r.id} → {dest}")
    return lines


def _post(r, endpoint, token):
    body = json.dumps(r.doc).encode()
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read() or b"{}").get("result") or {}
            if answer.get("already"):
                return f"{r.id}: already on the gateway ({endpoint})"
            return f"pushed {r.id} → {endpoint} (HTTP {resp.status})"
    except urllib.error.HTTPError as exc:
        try:
            said = json.loads(exc.read() or b"{}")
        except ValueError:
            said = {}
        problem = said.get("error") or exc.reason
        fix = said.get("fix") or "check the gateway log"
        if exc.code == 401:
            fix = "give the gateway's operator token with --token (its [status] token_file)"
        raise SenError(f"gateway refused {r.id}: HTTP {exc.code} {problem}", fix) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SenError(f"cannot reach {endpoint} ({reason})", "check the gateway URL and that it is running") from None
