"""What the uplink pipeline needs of a store, declared once: the gateway's SQLite store
(sen.gateway.store.Store) and the central ingest's PostgreSQL store
(sen.ingest.postgres_store.PgStore) both implement it, so the pipeline calls the methods
instead of probing for them, and a third store knows what to provide.
"""
from collections.abc import Iterator
from typing import Protocol

from sen.gateway.counter_state import NodeCounters


class Storage(Protocol):
    # The pipeline numbers a batch's readings from here, so a frame row can name its reading
    # range before the commit; a store that assigns its own ids may keep any value.
    next_reading_id: int
    # True: commit_batch takes `compact` (identity single-sample frames as flat lists the
    # store expands itself); False: the pipeline hands it full reading rows only.
    compact_readings: bool

    def load_states(self) -> dict[int, NodeCounters]:
        """Counter state per node at start (or after a failed commit)."""

    def frame_bytes(self, node_id: int, counter: int) -> bytes | None:
        """The stored frame under (node, counter): tells a copy from counter reuse."""

    def frames_before(self, node_id: int, counter: int) -> Iterator[tuple[int, float, bytes]]:
        """(counter, rx_time, frame) of the node's frames below `counter`, newest first, lazily:
        the re-sent-sample check stops after a few."""

    def commit_batch(self, *, raw_offset: int, cursor_key: str, frames: list, rx: list, readings: list,
                     nodes: dict[int, NodeCounters], node_seen: dict[int, tuple], rejections: dict[str, int],
                     mic_failures: dict[int, int], compact: dict | None = None, resent: dict[int, int] | None = None,
                     next_reading_id: int | None = None) -> None:
        """One transaction for a whole batch, including the raw-log offset processed so far."""
