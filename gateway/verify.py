"""Verify step: node key, counter reconstruction, MIC, counter rules. Mutates nothing;
the pipeline calls counter_state.accept once the frame has also decoded."""
from dataclasses import dataclass

from sen.gateway import counter_state
from sen.gateway.counter_state import Kind, NodeCounters
from sen.gateway.frame_decode import FrameRejected, Reason, UplinkHeader, parse_header, verify_mic


@dataclass(slots=True)
class Verified:
    header: UplinkHeader
    counter: int
    kind: Kind
    state: NodeCounters


class Verifier:
    def __init__(self, keys, states: dict[int, NodeCounters], frame_bytes_of):
        """keys: anything with get(node_id) -> bytes | None. states: node id -> counters
        (missing nodes start empty). frame_bytes_of(node, counter) -> bytes | None of the
        accepted copy, for telling duplicates from counter reuse."""
        self.keys = keys
        self.states = states
        self.frame_bytes_of = frame_bytes_of

    def state(self, node_id: int) -> NodeCounters:
        st = self.states.get(node_id)
        if st is None:
            st = self.states[node_id] = NodeCounters()
        return st

    def verify(self, frame: bytes) -> Verified:
        header = parse_header(frame)
        key = self.keys.get(header.node_id)
        if key is None:
            raise FrameRejected(Reason.UNKNOWN_NODE, f"node {header.node_id} has no active key")
        st = self.states.get(header.node_id) or NodeCounters()
        c32 = counter_state.reconstruct(st, header)
        if not 0 <= c32 <= 0xFFFFFFFF:
            raise FrameRejected(Reason.REPLAY, f"node {header.node_id}: counter before 0")
        verify_mic(header, key, c32)
        frame = bytes(frame)
        kind = counter_state.classify(
            st, c32, header, lambda c: self.frame_bytes_of(header.node_id, c) == frame)
        return Verified(header, c32, kind, st)
