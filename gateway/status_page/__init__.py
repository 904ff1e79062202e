"""The gateway's status page: a small read-mostly web server (JSON API + local assets).

`start(settings, db_path, ...)` starts it in background threads and returns a handle with
`.url` and `.stop()`; the gateway service calls it from `sen gateway run` when the
`[status_page]` table of gateway.toml enables it (see settings.py for the keys).
"""
from sen.gateway.status_page.server import StatusServer, start, start_for_gateway  # noqa: F401
from sen.gateway.status_page.settings import StatusPageSettings, from_table  # noqa: F401
