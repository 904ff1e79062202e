"""Link adaptation (ADR) for Sen nodes: docs/frame-format.md section 9.

Pure and typed: the gateway and the central ingest feed it the best copy of each accepted
uplink and store what it returns; nothing here touches a radio, a clock or a database.
The algorithm is ChirpStack's default ADR with a stated margin and a hysteresis band, so an
SNR wandering around one threshold does not make the node switch SF on every ACK.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace

# Demodulation limit per SF at 125 kHz (SX1276 datasheet table 13); the emulator's radio
# world uses the same table, so what ADR expects is what the emulated radios do.
REQUIRED_SNR_DB: dict[int, float] = {6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
SF_STEP_DB = 2.5
TX_STEP_DB = 2
MAX_BACKOFF_DB = 20
HISTORY_LEN = 20
MIN_FRAMES = 4
LOSS_LIMIT = 0.30
ALL_SFS: tuple[int, ...] = (7, 8, 9, 10, 11, 12)


def required_snr(sf: int) -> float:
    return REQUIRED_SNR_DB.get(int(sf), REQUIRED_SNR_DB[12])


@dataclass(frozen=True)
class LinkFrame:
    """The best copy of one accepted uplink; lost_before: frames missing between it and the
    previous one (a BOOT jump is not a loss); tx_backoff_db: the back-off the node was last
    told, which lowered this frame's SNR by as much."""
    snr: float
    rssi: float
    sf: int
    lost_before: int = 0
    tx_backoff_db: int = 0


@dataclass(frozen=True)
class LinkSetting:
    sf: int
    tx_backoff_db: int


@dataclass(frozen=True)
class AdrParams:
    margin_db: float = 5.0
    hysteresis_db: float = 1.0
    sfs: tuple[int, ...] = ALL_SFS  # the SFs the gateway's radios hear; one SF = power only
    pinned_sf: int | None = None     # the operator's pin (`sen gateway node-config --sf N`)


@dataclass
class NodeLink:
    """One node's history and the setting last commanded."""
    frames: list[LinkFrame] = field(default_factory=list)
    commanded: LinkSetting | None = None
    changes: int = 0  # how often the commanded setting changed (a metric)
    commanded_from_sf: int | None = None  # the SF the node ran when last commanded

    def observe(self, f: LinkFrame) -> bool:
        """Add the best copy of a new uplink. Returns True when the history was cleared: the
        node runs a slower SF than commanded, so it backed off on its own and the old SNRs
        describe a link that no longer exists."""
        # slower than both what it was told and what it ran then: a node that only missed
        # the ACK telling it to go faster keeps its history
        reset = self.commanded is not None and f.sf > max(self.commanded.sf, self.commanded_from_sf or 0)
        f = replace(f, tx_backoff_db=self.commanded.tx_backoff_db if self.commanded and not reset else 0)
        if reset:
            # the gap that made the node back off is part of the old link, not the new one
            self.frames = [replace(f, lost_before=0)]
            self.commanded = None
        else:
            self.frames = (self.frames + [f])[-HISTORY_LEN:]
        return reset

    def decide(self, params: AdrParams) -> LinkSetting | None:
        """The setting to put in the next ACK, or None while the history is too short."""
        choice = choose(self.frames, self.current(), params)
        if choice is None:
            return None
        return self.follow(choice)

    def follow(self, setting: LinkSetting) -> LinkSetting:
        """Record `setting` as commanded: decide's own choice, or one made elsewhere (the
        central ingest's advice), so the back-off this history assumes, and ADR's next
        choice, start from what the node was really told."""
        if setting != self.commanded:
            self.changes += 1
            self.commanded = setting
        if self.frames:
            self.commanded_from_sf = self.frames[-1].sf
        return setting

    @property
    def backed_off(self) -> bool:
        """The history was cleared because the node went slower than commanded on its own, and
        nothing has been commanded since (a new node has commanded_from_sf None as well)."""
        return self.commanded is None and self.commanded_from_sf is not None

    def current(self) -> LinkSetting | None:
        """What the node runs now: the SF of its newest frame and, as the node cannot report
        its power, the back-off last commanded."""
        if not self.frames:
            return None
        return LinkSetting(self.frames[-1].sf, self.commanded.tx_backoff_db if self.commanded else 0)

    def stats(self) -> LinkStats:
        return link_stats(self.frames)


@dataclass(frozen=True)
class LinkStats:
    frames: int
    snr_max: float | None
    snr_spread_db: float | None  # population standard deviation: an operator widens the margin where it is large
    rssi_mean: float | None
    loss_pct: float


def link_stats(frames: list[LinkFrame]) -> LinkStats:
    if not frames:
        return LinkStats(0, None, None, None, 0.0)
    snrs = [f.snr for f in frames]
    lost = sum(f.lost_before for f in frames)
    return LinkStats(len(frames), max(snrs), round(statistics.pstdev(snrs), 2),
                     round(statistics.fmean(f.rssi for f in frames), 1), round(100.0 * lost / (lost + len(frames)), 1))


def loss_ratio(frames: list[LinkFrame]) -> float:
    lost = sum(f.lost_before for f in frames)
    return lost / (lost + len(frames)) if frames else 0.0


def _at_current_setting(frames: list[LinkFrame]) -> list[LinkFrame]:
    """The newest frames sent at the newest frame's SF and back-off: losses before a step
    were answered by that step, and counting them again would run the node to SF12."""
    last = frames[-1]
    out: list[LinkFrame] = []
    for f in reversed(frames):
        if (f.sf, f.tx_backoff_db) != (last.sf, last.tx_backoff_db):
            break
        out.append(f)
    return out


def choose(frames: list[LinkFrame], current: LinkSetting | None, params: AdrParams) -> LinkSetting | None:
    if len(frames) < MIN_FRAMES or current is None:
        return None
    lo, hi = min(params.sfs), max(params.sfs)
    sf = min(max(current.sf, lo), hi)
    backoff = min(max(current.tx_backoff_db, 0), MAX_BACKOFF_DB)
    if params.pinned_sf is not None:
        free = choose(frames, current, replace(params, pinned_sf=None, sfs=ALL_SFS))
        assert free is not None
        if free.sf != params.pinned_sf:
            # pinned slower: the operator wants the margin, not a lower power; pinned faster:
            # the link is short of SNR already
            return LinkSetting(params.pinned_sf, 0)
        return free
    recent = _at_current_setting(frames)
    if len(recent) >= MIN_FRAMES and loss_ratio(recent) > LOSS_LIMIT:
        # lost frames leave no SNR to judge by: one step more robust, whatever the SNR says
        if backoff > 0:
            return LinkSetting(sf, max(0, backoff - TX_STEP_DB))
        return LinkSetting(_hearable(min(sf + 1, hi), params.sfs), 0)
    # SNR at full power: a frame sent with back-off b would have been b dB stronger
    snr_full = max(f.snr + f.tx_backoff_db for f in frames)
    headroom = snr_full - backoff - required_snr(sf) - params.margin_db
    if headroom < 0:
        need = -headroom
        regain = min(backoff, TX_STEP_DB * math.ceil(need / TX_STEP_DB))
        backoff -= regain
        need -= regain
        if need > 0:
            sf = min(sf + math.ceil(need / SF_STEP_DB), hi)
        return LinkSetting(_hearable(sf, params.sfs), backoff)
    # faster only with the hysteresis band spare, so noise around a threshold holds still
    steps = math.floor((headroom - params.hysteresis_db) / SF_STEP_DB)
    if steps <= 0:
        return LinkSetting(sf, backoff)
    down = min(steps, sf - lo)
    sf -= down
    backoff = min(MAX_BACKOFF_DB, backoff + TX_STEP_DB * (steps - down))
    return LinkSetting(_hearable(sf, params.sfs), backoff)


def _hearable(sf: int, sfs: tuple[int, ...]) -> int:
    """The nearest SF the gateway hears, on the robust side (radios at SF9 and SF11 only: 10 -> 11)."""
    return min((s for s in sfs if s >= sf), default=max(sfs))
