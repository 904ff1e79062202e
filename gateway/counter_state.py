"""Per-node frame-counter state and the rules of docs/frame-format.md section 6.

Pure logic on a small mutable record; the store persists the records in the same
transaction as the frames they describe.
"""
from dataclasses import dataclass
from enum import StrEnum

from sen.gateway.frame_decode import FrameRejected, Reason, UplinkHeader

WINDOW = 64
_MASK = (1 << WINDOW) - 1


class Kind(StrEnum):
    NEW = "new"  # above last
    LATE = "late"  # inside the window, not yet accepted
    DUPLICATE = "duplicate"  # accepted before, same bytes: another radio's copy


@dataclass(slots=True)
class NodeCounters:
    last: int = -1  # highest accepted counter; -1 while the gateway knows nothing of the node
    mask: int = 0  # bit i set: counter last - i was accepted, 0 <= i < WINDOW
    reboots: int = 0
    lost: int = 0
    accepted: int = 0
    late: int = 0
    duplicates: int = 0
    # bumped when the node is re-provisioned (key rotated): its counters start again, and the
    # store keeps (epoch << 32) | counter so old and new frames never collide
    epoch: int = 0

    @property
    def known(self) -> bool:
        return self.last >= 0

    def seen(self, c32: int) -> bool:
        i = self.last - c32
        return 0 <= i < WINDOW and bool(self.mask >> i & 1)


def reconstruct(state: NodeCounters, header: UplinkHeader) -> int:
    """The full 32-bit counter of a frame (rule 1)."""
    if header.counter_bits == 32:
        return header.counter_field
    if not state.known:
        raise FrameRejected(Reason.COUNTER_UNKNOWN, f"node {header.node_id}: 16-bit counter and no state")
    d = (header.counter_field - state.last) & 0xFFFF
    if 0 < d <= 32768:
        return state.last + d
    return state.last - ((0x10000 - d) & 0xFFFF)


def classify(state: NodeCounters, c32: int, header: UplinkHeader, same_bytes) -> Kind:
    """Rules 3–7 for a frame whose MIC is already good. `same_bytes(c32)` says whether the
    copy accepted earlier under this counter had the same bytes. Raises FrameRejected."""
    if c32 > 0xFFFFFFFF or c32 < 0:
        raise FrameRejected(Reason.REPLAY, f"counter {c32} outside 32 bits")
    if not state.known:
        return Kind.NEW
    if state.seen(c32):
        if same_bytes(c32):
            return Kind.DUPLICATE
        raise FrameRejected(Reason.COUNTER_REUSED, f"node {header.node_id} counter {c32} with different bytes")
    if c32 <= state.last - WINDOW:
        raise FrameRejected(Reason.REPLAY, f"node {header.node_id} counter {c32}, last {state.last}")
    if header.boot and c32 <= state.last:
        raise FrameRejected(Reason.REPLAY, f"node {header.node_id} BOOT at {c32} not above {state.last}: NVS lost?")
    return Kind.LATE if c32 <= state.last else Kind.NEW


def accept(state: NodeCounters, c32: int, kind: Kind, boot: bool) -> int:
    """Record an accepted frame; returns the number of frames newly counted lost."""
    lost = 0
    if kind is Kind.DUPLICATE:
        state.duplicates += 1
        return 0
    state.accepted += 1
    if boot:
        state.reboots += 1
    if kind is Kind.LATE:
        state.late += 1
        state.mask |= 1 << (state.last - c32)
        if state.lost > 0:
            state.lost -= 1  # it was counted lost when the jump past it arrived
            lost = -1
        return lost
    if state.known:
        gap = c32 - state.last - 1
        if gap > 0 and not boot:
            lost = gap
            state.lost += gap
        shift = c32 - state.last
        state.mask = ((state.mask << shift) | 1) & _MASK if shift < WINDOW else 1
    else:
        state.mask = 1
    state.last = c32
    return lost
