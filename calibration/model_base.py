"""What every calibration curve model is: the Fit it returns, the fitting helpers the models
share (ordinary least squares, curve_fit with covariance), and the delta-method bands every
record's plots and intervals come from. The models themselves are in models.py."""
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from sen.errors import SenError

@dataclass
class Fit:
    names: list
    params: np.ndarray
    cov: np.ndarray
    resid_sd: float          # residual SD of the target, in target units
    dof: int
    n: int
    fixed: list = field(default_factory=list)   # names held at published values (SE 0)
    extra: dict = field(default_factory=dict)   # model-specific (knots, acceptance, options)
    method: str = "OLS"


def _fail_small(n, k, what="points"):
    if n <= k:
        raise SenError(f"{n} usable {what} cannot fit {k} parameter(s) with any uncertainty",
                       f"collect at least {k + 2} {what} spanning the working range")


def _ols(A: np.ndarray, y: np.ndarray, names):
    """OLS with a rank check so a singular design is refused, not fitted."""
    n, k = A.shape
    _fail_small(n, k)
    scale = np.sqrt((A ** 2).sum(axis=0))
    if np.any(scale == 0):
        bad = [names[i] for i in np.nonzero(scale == 0)[0]]
        raise SenError(f"singular design: {', '.join(bad)} is all zero", "use data where every input varies")
    As = A / scale
    sv = np.linalg.svd(As, compute_uv=False)
    if sv[-1] / sv[0] < 1e-10:
        raise SenError("singular design: the inputs are constant or collinear "
                       f"(condition number {sv[0] / max(sv[-1], 1e-300):.1e})",
                       "collect data where each input varies independently (e.g. RH not locked to PM)")
    beta_s, *_ = np.linalg.lstsq(As, y, rcond=None)
    beta = beta_s / scale
    resid = y - A @ beta
    dof = n - k
    s2 = float(resid @ resid) / dof
    inv = np.linalg.inv(As.T @ As)
    cov = s2 * inv / np.outer(scale, scale)
    return beta, cov, float(np.sqrt(s2)), dof


def _curve_fit(f, X, y, p0, names):
    n, k = len(y), len(p0)
    _fail_small(n, k)
    try:
        p, cov = optimize.curve_fit(lambda _x, *p: f(np.asarray(p), X), np.zeros(n), y, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise SenError(f"the fit did not converge ({exc})", "check the data covers the working range") from None
    if not np.all(np.isfinite(cov)):
        raise SenError("singular design: parameters cannot be separated by this data",
                       "collect data spanning a wider range of every input")
    resid = y - f(p, X)
    return p, cov, float(np.sqrt(resid @ resid / (n - k))), n - k


class Model:
    name = ""
    summary = ""
    n_inputs = (1, 1)          # (min, max); max None = any
    input_hint = "x"
    # Inputs whose valid range is set by physics, not by the data seen (temperature compensation).
    physical_ranges: dict = {}

    def check_inputs(self, inputs):
        lo, hi = self.n_inputs
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            want = f"exactly {lo}" if lo == hi else f"at least {lo}"
            raise SenError(f"model {self.name} needs {want} input(s) ({self.input_hint}), got {len(inputs)}",
                           f"pass --inputs {self.input_hint}")

    def param_names(self, inputs, options):
        raise NotImplementedError

    def fit(self, X: list, y: np.ndarray, options: dict) -> Fit:
        raise NotImplementedError

    def predict(self, params, X: list, options: dict, extra: dict) -> np.ndarray:
        raise NotImplementedError


def bands(model: Model, fit_params, cov, resid_sd, dof, X, options, extra, level=0.95):
    """(yhat, confidence half-width, prediction half-width) at X, by the delta method."""
    from scipy import stats

    yhat = model.predict(fit_params, X, options, extra)
    k = len(fit_params)
    t = stats.t.ppf(0.5 + level / 2, max(dof, 1))
    if k == 0:
        conf = np.zeros_like(yhat)
    else:
        J = np.empty((len(yhat), k))
        for i in range(k):
            h = 1e-6 * max(abs(fit_params[i]), 1e-3)
            p = np.array(fit_params, dtype=float)
            p[i] += h
            J[:, i] = (model.predict(p, X, options, extra) - yhat) / h
        conf = t * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, cov, J), 0.0))
    pred = np.sqrt(conf ** 2 + (t * resid_sd) ** 2)
    return yhat, conf, pred
