"""Verify step: node key, counter reconstruction, MIC, then the counter rules (new, late, a
copy of an accepted frame, or a replay / counter reuse to reject). Mutates nothing: the
dedupe step records the counter once the frame has also decoded.

Two implementations of the same checks. The fast one (sen.gateway.fast_accept: cached
HMAC pad states, a header read without copies) takes the common frame; on any doubt the
reference one (frame_decode.parse_header, verify_mic) decides and names the reason.
"""
import hmac

from sen.gateway import counter_state
from sen.gateway.counter_state import Kind, NodeCounters
from sen.gateway.fast_accept import MicKeys, header_of
from sen.gateway.frame_decode import FrameRejected, Reason, parse_header, verify_mic

_EMPTY = NodeCounters()
# module-level names for the per-frame fast path: a global lookup, not an attribute chain
_compare = hmac.compare_digest
_mic = MicKeys.mic
_reconstruct = counter_state.reconstruct
_classify = counter_state.classify
_NEW = Kind.NEW


class Verify:
    def __init__(self, keys, states: dict[int, NodeCounters], bytes_of):
        """keys: anything with get(node_id) -> bytes | None. states: node id -> counters
        (missing nodes start empty). bytes_of(node, counter) -> bytes | None of the accepted
        copy in the node's current epoch, for telling a copy from counter reuse."""
        self.keys = keys
        self.states = states
        self.bytes_of = bytes_of
        self.mics = MicKeys(keys)
        self._mic_states = self.mics.states

    def __call__(self, frame) -> tuple:
        """(header, 32-bit counter, Kind); raises FrameRejected. The header is the fast
        path's Header or, when the reference path decided, an UplinkHeader."""
        h = header_of(frame)
        if h is not None:
            mc = self._mic_states(h.node_id)
            if mc is not None:
                st = self.states.get(h.node_id) or _EMPTY
                if h.counter_bits == 32 or st.last >= 0:
                    c32 = _reconstruct(st, h)
                    if 0 <= c32 <= 0xFFFFFFFF and _compare(_mic(mc, c32, frame[:-4]), frame[-4:]):
                        # above the highest accepted counter (or no state yet) is NEW whatever
                        # else classify would check; only older counters need the window rules
                        if c32 > st.last:
                            return h, c32, _NEW
                        return h, c32, _classify(
                            st, c32, h, lambda c, n=h.node_id, f=frame: self.bytes_of(n, c) == f)
        return self.reference(frame)

    def reference(self, frame) -> tuple:
        header = parse_header(frame)
        key = self.keys.get(header.node_id)
        if key is None:
            raise FrameRejected(Reason.UNKNOWN_NODE, f"node {header.node_id} has no active key")
        st = self.states.get(header.node_id) or _EMPTY
        c32 = counter_state.reconstruct(st, header)
        if not 0 <= c32 <= 0xFFFFFFFF:
            raise FrameRejected(Reason.REPLAY, f"node {header.node_id}: counter before 0")
        verify_mic(header, key, c32)
        frame = bytes(frame)
        kind = counter_state.classify(st, c32, header, lambda c: self.bytes_of(header.node_id, c) == frame)
        return header, c32, kind
