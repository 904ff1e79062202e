"""Per-channel filters: spikes are rejected, trimmed mean drops min and max, EWMA smooths."""
import random

import filters


def test_median_hampel_rejects_a_spike_that_moves_the_plain_mean():
    xs = [25.1, 25.2, 25.0, 85.0, 25.1]
    assert abs(sum(xs) / 5 - 25.1) > 10
    assert filters.median_hampel(list(xs)) == 25.1


def test_median_hampel_drops_outliers_before_taking_the_median():
    # Two high spikes in seven: the plain median shifts up a sample, Hampel does not.
    xs = [10.0, 10.4, 10.1, 10.3, 10.2, 55.0, 60.0]
    assert sorted(xs)[3] == 10.3
    assert filters.median_hampel(list(xs)) == 10.2


def test_median_hampel_keeps_a_real_step_when_the_noise_floor_is_given():
    # Identical samples give MAD 0; without a floor the one honest change is an "outlier".
    xs = [20.0, 20.0, 20.0, 20.0, 20.01]
    assert filters.median_hampel(list(xs), floor=0.01) == 20.0
    assert filters.median_hampel(list(xs)) == 20.0


def test_failed_reads_are_skipped_and_all_failed_gives_none():
    assert filters.median_hampel([None, 3.0, None, 5.0, 4.0]) == 4.0
    assert filters.median_hampel([None, None]) is None
    assert filters.trimmed_mean([None, None, None]) is None
    assert filters.mean([]) is None


def test_trimmed_mean_drops_exactly_one_min_and_one_max():
    assert filters.trimmed_mean([1.0, 100.0, 10.0, 12.0, 14.0]) == 12.0
    # With duplicates only one copy of each extreme goes.
    assert filters.trimmed_mean([5.0, 5.0, 5.0, 9.0, 9.0]) == (5 + 5 + 9) / 3
    assert filters.trimmed_mean([4.0, 6.0]) == 5.0


def test_ewma_converges_and_starts_from_the_first_value():
    assert filters.ewma(None, 10.0, 0.3) == 10.0
    assert filters.ewma(10.0, None, 0.3) == 10.0
    v = None
    for _ in range(40):
        v = filters.ewma(v if v is not None else 0.0, 100.0, 0.3)
    assert abs(v - 100.0) < 0.01


def test_median_hampel_on_noisy_data_with_spikes_stays_near_truth():
    rng = random.Random(4)
    for _ in range(200):
        truth = rng.uniform(-10, 40)
        xs = [truth + rng.gauss(0, 0.05) for _ in range(7)]
        for i in rng.sample(range(7), 2):
            xs[i] = truth + rng.choice((-1, 1)) * rng.uniform(5, 50)
        assert abs(filters.median_hampel(xs, floor=0.01) - truth) < 0.2


def test_reduce_names_the_filter_and_rejects_unknown():
    assert filters.reduce("trimmed_mean", [1.0, 2.0, 3.0, 100.0]) == 2.5
    assert filters.reduce("median", [1.0, 2.0, 3.0]) == 2.0
    try:
        filters.reduce("kalman", [1.0])
    except ValueError as e:
        assert "kalman" in str(e)
    else:
        raise AssertionError("unknown filter accepted")
