"""How the demo report explains a confirmed node's sample that never reached the store."""
from types import SimpleNamespace

from host_tools.demo_report import _unstored

T0 = 1_700_000_000.0


def _world(cuts):
    return SimpleNamespace(start_epoch_s=T0, power_loss_windows=lambda station: cuts)


def test_sample_queued_at_a_power_cut_is_told_apart_from_a_lost_one():
    starts = [0.0, 900.0, 1800.0, 2700.0, 3600.0]
    stored = [T0 + 1.0, T0 + 2701.0, T0 + 3601.0]       # 900 and 1800 never arrived
    why = _unstored(starts, stored, _world([(2000.0, 2300.0)]), "rain-1")
    # 900 was followed by no stored sample before the cut at 2000: it was still queued;
    # so was 1800
    assert why == [("power_cut", 900.0), ("power_cut", 1800.0)]


def test_gap_with_no_power_cut_is_lost_and_the_last_unsent_sample_is_queued():
    starts = [0.0, 900.0, 1800.0, 2700.0]
    stored = [T0 + 1.0, T0 + 1801.0]
    why = _unstored(starts, stored, _world([]), "water-1")
    assert why == [("lost", 900.0), ("queued_at_end", 2700.0)]


def test_a_later_sample_stored_before_the_cut_means_the_gap_is_a_real_loss():
    starts = [0.0, 900.0, 1800.0]
    stored = [T0 + 1.0, T0 + 1801.0, T0 + 4000.0]
    why = _unstored(starts, stored, _world([(3000.0, 3300.0)]), "rain-1")
    assert why == [("lost", 900.0)]
