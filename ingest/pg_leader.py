"""One worker at a time for a job the ingest workers share (a forwarder's outbox, the ADR
advice): the job runs while its worker holds a PostgreSQL session advisory lock. When that
worker dies its session ends, the lock is free, and a standby takes over within a few
seconds; a standby retries at random intervals so that two do not race each time.
"""
import logging
import random

from sen.ingest.postgres_store import connect

log = logging.getLogger("sen.ingest")


def run_as_leader(owner, key: int, lead, what: str) -> None:
    """Until owner.stop_event: connect, try the lock `key`, and while held run lead(con).
    owner has dsn, app, standby_s, stop_event, and gets leader (bool) and last_error set.
    An error ends the turn (logged once, named by `what`); the connection is closed, which
    releases the lock, and the loop stands by again."""
    while not owner.stop_event.is_set():
        try:
            con = connect(owner.dsn, app=owner.app)
        except Exception as exc:
            owner.last_error = str(exc)
            owner.stop_event.wait(owner.standby_s)
            continue
        try:
            if con.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                owner.leader = True
                log.info("%s: this worker leads", what)
                lead(con)
        except Exception as exc:
            owner.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s: %s", what, owner.last_error)
        finally:
            owner.leader = False
            try:
                con.close()  # releases the advisory lock
            except Exception:
                pass
        owner.stop_event.wait(owner.standby_s * random.uniform(0.5, 1.0))
