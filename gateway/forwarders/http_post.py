"""Small JSON-over-HTTP client on the standard library, shared by the HTTP forwarders."""
import json
import urllib.error
import urllib.request

from sen.gateway.json_out import dumps


class UpstreamError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def request_json(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 15.0,
                 ok_status=(200, 201, 204, 207)):
    """-> (status, parsed body or None, response headers); UpstreamError on a refusal or no answer."""
    data = None if body is None else dumps(body).encode()
    hdrs = {"Accept": "application/json", **(headers or {})}
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text, status, rh = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        status, text, rh = exc.code, exc.read(), exc.headers
    except (urllib.error.URLError, OSError) as exc:
        raise UpstreamError(f"{method} {url}: {exc}") from None
    if status not in ok_status:
        raise UpstreamError(f"{method} {url}: HTTP {status} {text[:300]!r}", status)
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        raise UpstreamError(f"{method} {url}: HTTP {status} answered with non-JSON {text[:100]!r}", status) from None
    return status, parsed, rh


def post_json(url: str, body, headers: dict | None = None, timeout: float = 15.0, ok_status=(200, 201, 204, 207)):
    status, parsed, _ = request_json("POST", url, body, headers, timeout, ok_status)
    return status, parsed
