"""Semtech time-on-air formula against the datasheet check values in domain-facts.md."""
import pytest

import airtime  # firmware/airtime.py


@pytest.mark.parametrize("sf,payload,expected_ms", [
    (7, 20, 56.58), (7, 51, 102.66), (12, 20, 1318.91), (12, 51, 2465.79), (9, 13, 164.864)])
def test_check_values(sf, payload, expected_ms):
    assert airtime.time_on_air_us(payload, sf=sf) / 1000 == pytest.approx(expected_ms, abs=0.006)


def test_low_data_rate_optimize_follows_symbol_time():
    assert airtime.ldro(11, 125000) == 1 and airtime.ldro(12, 125000) == 1
    assert airtime.ldro(10, 125000) == 0 and airtime.ldro(12, 500000) == 0
