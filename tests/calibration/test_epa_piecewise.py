"""EPA 2021 piecewise PurpleAir correction, blended form, against values worked by hand from the
published equations (US EPA, "AirNow Fire and Smoke Map: Questions and Answers", October 2021;
Barkjohn et al., Sensors 22 (2022) 9669):

  x < 30:        0.524x − 0.0862RH + 5.75
  30 ≤ x < 50:   [0.786(x/20 − 3/2) + 0.524(1 − (x/20 − 3/2))]x − 0.0862RH + 5.75
  50 ≤ x < 210:  0.786x − 0.0862RH + 5.75
  210 ≤ x < 260: [0.69(x/50 − 21/5) + 0.786(1 − (x/50 − 21/5))]x − 0.0862RH(1 − (x/50 − 21/5))
                 + 2.966(x/50 − 21/5) + 5.75(1 − (x/50 − 21/5)) + 8.84e-4x²(x/50 − 21/5)
  x ≥ 260:       2.966 + 0.69x + 8.84e-4x²
"""
import numpy as np
import pytest

from sen.calibration import epa
from sen.calibration.fitting import fit_arrays

# (PA_cf1, RH, hand-worked value)
WORKED = [
    (20, 70, 0.524 * 20 - 0.0862 * 70 + 5.75),                     # 10.48 − 6.034 + 5.75 = 10.196
    (40, 50, (0.786 * 0.5 + 0.524 * 0.5) * 40 - 4.31 + 5.75),      # s = 40/20 − 1.5 = 0.5 → 27.64
    (100, 80, 78.6 - 6.896 + 5.75),                                # 77.454
    (235, 60, (0.69 * 0.5 + 0.786 * 0.5) * 235 - 0.0862 * 60 * 0.5 + 2.966 * 0.5 + 5.75 * 0.5
     + 8.84e-4 * 235 ** 2 * 0.5),                                  # s = 4.7 − 4.2 = 0.5 → 199.61145
    (300, 0, 2.966 + 0.69 * 300 + 8.84e-4 * 90000),                # 289.526 (RH plays no part)
    (500, 90, 2.966 + 345 + 221.0),                                # 568.966
]


@pytest.mark.parametrize("x,rh,want", WORKED)
def test_published_curve_matches_hand_worked_values(x, rh, want):
    assert epa.correct([x], [rh])[0] == pytest.approx(want, abs=1e-9)


def test_hand_values_are_the_ones_written_in_the_docstring():
    assert [round(w, 5) for _, _, w in WORKED] == [10.196, 27.64, 77.454, 199.61145, 289.526, 568.966]


@pytest.mark.parametrize("edge", [30.0, 50.0, 210.0, 260.0])
def test_no_jump_at_the_blend_edges(edge):
    """The blended form is continuous where the earlier form switched hard (at 343)."""
    rh = np.full(2, 65.0)
    lo, hi = epa.correct([edge - 1e-9, edge + 1e-9], rh)
    assert hi == pytest.approx(lo, abs=1e-6)


def test_local_fit_recovers_local_coefficients_and_keeps_epa_where_data_does_not_reach():
    rng = np.random.default_rng(4)
    n = 800
    x = rng.uniform(3, 180, n)   # no smoke: nothing reaches the 210–260 blend
    rh = rng.uniform(40, 98, n)
    true = {"a_low": 0.50, "a_mid": 0.75, "b_rh": -0.07, "c": 4.0}
    coef = [true.get(k, v) for k, v in epa.PUBLISHED.items()]
    y = epa.correct(x, rh, coef) + rng.normal(0, 1.5, n)
    _, fit = fit_arrays(None, [x, rh], y, "epa_piecewise")
    got = dict(zip(fit.names, fit.params))
    se = dict(zip(fit.names, np.sqrt(np.diag(fit.cov))))
    for k, v in true.items():
        assert abs(got[k] - v) < 4 * se[k]
    assert fit.fixed == ["d_high", "e_high", "f_high"]
    assert [got[k] for k in fit.fixed] == [epa.PUBLISHED[k] for k in fit.fixed]


def test_records_of_the_earlier_hard_switch_form_still_apply_as_fitted():
    from sen.calibration.models import get
    p = [0.52, -0.086, 5.75, 0.46, 3.93e-4, 2.97]
    out = get("epa_piecewise").predict(p, [np.array([100.0, 400.0]), np.array([50.0, 50.0])], {"breakpoint": 343.0}, {})
    assert out.tolist() == pytest.approx([52 - 4.3 + 5.75, 0.46 * 400 + 3.93e-4 * 160000 + 2.97])
