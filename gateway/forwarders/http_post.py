"""Small JSON-over-HTTP POST on the standard library, shared by the HTTP forwarders."""
import json
import urllib.error
import urllib.request

from sen.gateway.json_out import dumps


class UpstreamError(Exception):
    pass


def post_json(url: str, body, headers: dict | None = None, timeout: float = 15.0, ok_status=(200, 201, 204, 207)):
    data = dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise UpstreamError(f"{url}: {exc}") from None
    if status not in ok_status:
        raise UpstreamError(f"{url}: HTTP {status} {text[:200]!r}")
    return status, (json.loads(text) if text.strip() else None)
