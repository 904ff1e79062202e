"""Calibration curve models: fit with standard errors, predict vectorised.

Every model maps its inputs (node channels) to the target (reference quantity). Each fit
returns a Fit: parameter values, covariance, residual SD in target units and degrees of
freedom, from which the record derives 95 % intervals and confidence/prediction bands.

Model names (use with `sen cal fit --model`):
  linear, polynomial, multilinear, epa_pa, epa_piecewise, kohler, ph_nernst,
  conductivity, turbidity_pchip, rain_power, deming, odr
"""
import numpy as np
from scipy.interpolate import PchipInterpolator

from sen.errors import SenError

from . import epa
from .model_base import Fit, Model, _curve_fit, _fail_small, _ols, bands  # noqa: F401 (Fit, bands: the models' API)

NERNST_MV_PER_K = 0.19842       # mV per pH per kelvin (RT ln10 / F)
NERNST_25C = NERNST_MV_PER_K * 298.15  # 59.16 mV/pH


class Linear(Model):
    name, summary, input_hint = "linear", "y = b0 + b1·x", "RAW"

    def param_names(self, inputs, options):
        return ["b0", "b1"]

    def fit(self, X, y, options):
        A = np.column_stack([np.ones_like(X[0]), X[0]])
        b, cov, s, dof = _ols(A, y, ["intercept", "slope"])
        return Fit(self.param_names(None, options), b, cov, s, dof, len(y))

    def predict(self, p, X, options, extra):
        return p[0] + p[1] * X[0]


class Polynomial(Model):
    name, summary, input_hint = "polynomial", "y = Σ bk·x^k (k ≤ --degree, default 2)", "RAW"

    def param_names(self, inputs, options):
        return [f"b{k}" for k in range(int(options.get("degree", 2)) + 1)]

    def fit(self, X, y, options):
        d = int(options.get("degree", 2))
        if d < 1 or d > 5:
            raise SenError(f"polynomial degree {d} is not supported", "use --degree 1 to 5")
        A = np.column_stack([X[0] ** k for k in range(d + 1)])
        names = self.param_names(None, options)
        b, cov, s, dof = _ols(A, y, names)
        return Fit(names, b, cov, s, dof, len(y))

    def predict(self, p, X, options, extra):
        return sum(p[k] * X[0] ** k for k in range(len(p)))


class Multilinear(Model):
    name, summary, input_hint = "multilinear", "y = b0 + Σ bi·xi (covariates such as RH, T)", "RAW,COV[,COV…]"
    n_inputs = (1, None)

    def param_names(self, inputs, options):
        return ["b0"] + [f"b_{n}" for n in inputs]

    def fit(self, X, y, options):
        A = np.column_stack([np.ones_like(X[0])] + list(X))
        names = ["b0"] + [f"b{i + 1}" for i in range(len(X))]
        b, cov, s, dof = _ols(A, y, names)
        return Fit(names, b, cov, s, dof, len(y))

    def predict(self, p, X, options, extra):
        return p[0] + sum(p[i + 1] * X[i] for i in range(len(X)))


class EpaPA(Model):
    name = "epa_pa"
    summary = "US EPA PurpleAir form (Barkjohn 2021): PM2.5 = a·PA_cf1 + b·RH + c"
    n_inputs, input_hint = (2, 2), "pm25_cf1,rh"

    def param_names(self, inputs, options):
        return ["a", "b", "c"]

    def fit(self, X, y, options):
        A = np.column_stack([X[0], X[1], np.ones_like(X[0])])
        b, cov, s, dof = _ols(A, y, ["PA_cf1", "RH", "intercept"])
        return Fit(["a", "b", "c"], b, cov, s, dof, len(y))

    def predict(self, p, X, options, extra):
        return p[0] * X[0] + p[1] * X[1] + p[2]


class EpaPiecewise(Model):
    name = "epa_piecewise"
    summary = ("US EPA 2021 piecewise (blended 30–50 and 210–260 µg/m³; Fire and Smoke Map, Barkjohn 2022); "
               "terms the data does not reach keep EPA's values")
    n_inputs, input_hint = (2, 2), "pm25_cf1,rh"

    def param_names(self, inputs, options):
        return list(epa.NAMES)

    def fit(self, X, y, options):
        B = epa.basis(X[0], X[1])
        support = (np.abs(B) > 1e-12).sum(axis=0)
        free = support >= epa.MIN_SUPPORT
        fixed_vals = np.array([epa.PUBLISHED[n] for n in epa.NAMES])
        p = fixed_vals.copy()
        cov = np.zeros((len(epa.NAMES), len(epa.NAMES)))
        rest = y - B[:, ~free] @ fixed_vals[~free]
        idx = np.nonzero(free)[0]
        if idx.size:
            b, c, s, dof = _ols(B[:, idx], rest, [epa.NAMES[i] for i in idx])
            p[idx] = b
            cov[np.ix_(idx, idx)] = c
        resid = y - B @ p
        dof = max(len(y) - int(idx.size), 1)
        return Fit(list(epa.NAMES), p, cov, float(np.sqrt(resid @ resid / dof)), dof, len(y),
                   fixed=[epa.NAMES[i] for i in np.nonzero(~free)[0]])

    def predict(self, p, X, options, extra):
        p = np.asarray(p, float)
        if p.size == 6:  # a record of the earlier hard-switch form (a, b, c below the breakpoint; d, e, f above)
            x, bp = X[0], float(options.get("breakpoint", 343.0))
            return np.where(x < bp, p[0] * x + p[1] * X[1] + p[2], p[3] * x + p[4] * x ** 2 + p[5])
        return epa.basis(X[0], X[1]) @ p


def kohler_growth(rh, kappa):
    """C = 1 + (κ/1.65)/(−1 + 1/a_w), a_w = RH/100 capped at 0.95 (optical PM humidity growth)."""
    aw = np.clip(np.asarray(rh, dtype=float) / 100.0, 1e-6, 0.95)
    return 1.0 + (kappa / 1.65) / (-1.0 + 1.0 / aw)


class Kohler(Model):
    name = "kohler"
    summary = "κ-Köhler humidity growth: PM_dry = s·PM / (1 + (κ/1.65)/(1/a_w − 1)), a_w = RH/100 ≤ 0.95"
    n_inputs, input_hint = (2, 2), "pm25_cf1,rh"

    def param_names(self, inputs, options):
        return ["s", "kappa"]

    def fit(self, X, y, options):
        f = lambda p, X: p[0] * X[0] / kohler_growth(X[1], p[1])
        p, cov, s, dof = _curve_fit(f, X, y, [1.0, 0.3], ["s", "kappa"])
        return Fit(["s", "kappa"], p, cov, s, dof, len(y), method="nonlinear LS")

    def predict(self, p, X, options, extra):
        return p[0] * X[0] / kohler_growth(X[1], p[1])


class PhNernst(Model):
    name = "ph_nernst"
    summary = ("pH two/three-point Nernst with temperature compensation: "
               "E = E7 + S25·(T+273.15)/298.15·(7 − pH); acceptance: slope 85–105 %, offset ±30 mV")
    n_inputs, input_hint = (2, 2), "ph_raw,water_temp"
    physical_ranges = {"water_temp": [0.0, 60.0]}  # Nernst compensation holds across water temperatures

    def param_names(self, inputs, options):
        return ["E7_mV", "S25_mV_per_pH"]

    def fit(self, X, y, options):
        E, T = X
        levels = np.unique(np.round(y, 2))
        if levels.size < 2:
            raise SenError(f"only one buffer (pH {levels[0]:g}) in the data", "read at least two buffers 3 pH apart")
        if levels.max() - levels.min() < 2.95:  # nominal 4.01/7.00 buffers count as 3 apart
            raise SenError(f"buffers pH {levels.min():g} and {levels.max():g} are less than 3 pH apart",
                           "use e.g. pH 4 and 7, or 7 and 10")
        tau = (T + 273.15) / 298.15
        # Fit the electrode's own direction (mV from pH); apply inverts it.
        A = np.column_stack([np.ones_like(E), tau * (7.0 - y)])
        b, cov, _, dof = _ols(A, E, ["E7", "S25"])
        gain = float(options.get("gain", 1.0))
        zero = float(options.get("zero_mv", 0.0))
        fit = Fit(["E7_mV", "S25_mV_per_pH"], b, cov, 0.0, dof, len(y), extra={"levels": levels.tolist()})
        resid = y - self.predict(b, X, options, {})
        fit.resid_sd = float(np.sqrt(resid @ resid / dof))
        slope_pct = abs(b[1]) / (abs(gain) * NERNST_25C) * 100.0
        offset = (b[0] - zero) / gain
        fit.extra["acceptance"] = self._buffer_errors(b, X, y, options, levels) + [
            {"name": "slope", "value": round(slope_pct, 2), "unit": "% of Nernst", "target": "85–105 %",
             "pass": bool(85.0 <= slope_pct <= 105.0)},
            {"name": "offset at pH 7", "value": round(offset, 2), "unit": "mV", "target": "±30 mV",
             "pass": bool(abs(offset) <= 30.0)},
        ]
        return fit

    def _buffer_errors(self, p, X, y, options, levels):
        """Three or more buffers: each must read back within 0.1 pH (a bent electrode fails here)."""
        if levels.size < 3:
            return []
        got = self.predict(p, X, options, {})
        worst = max(abs(float(np.mean(got[np.round(y, 2) == L])) - L) for L in levels)
        return [{"name": "worst buffer read-back", "value": round(worst, 3), "unit": "pH", "target": "≤ 0.1 pH",
                 "pass": bool(worst <= 0.1)}]

    def predict(self, p, X, options, extra):
        E, T = X
        tau = (np.asarray(T, dtype=float) + 273.15) / 298.15
        return 7.0 - (E - p[0]) / (p[1] * tau)


class Conductivity(Model):
    name = "conductivity"
    summary = ("conductivity: EC25 = (k·V + c)/(1 + α(T − 25)); k = cell constant × gain, "
               "α fixed by --alpha (default 0.02 /°C) or fitted with --alpha fit")
    n_inputs, input_hint = (2, 2), "ec_raw,water_temp"
    physical_ranges = {"water_temp": [0.0, 40.0]}  # linear α holds roughly 0–40 °C

    def param_names(self, inputs, options):
        return ["k", "c"] + (["alpha"] if str(options.get("alpha", "0.02")) == "fit" else [])

    def fit(self, X, y, options):
        V, T = X
        a = options.get("alpha", 0.02)
        if str(a) == "fit":
            if np.ptp(T) < 5:
                raise SenError(f"water temperature spans only {np.ptp(T):.1f} °C, too little to fit α",
                               "give --alpha 0.02 or read the standards at temperatures ≥ 5 °C apart")
            f = lambda p, X: (p[0] * X[0] + p[1]) / (1 + p[2] * (X[1] - 25.0))
            p0 = [float(np.median(y / np.maximum(V, 1e-9))), 0.0, 0.02]
            p, cov, s, dof = _curve_fit(f, X, y, p0, ["k", "c", "alpha"])
            return Fit(["k", "c", "alpha"], p, cov, s, dof, len(y), method="nonlinear LS")
        f = 1 + float(a) * (T - 25.0)
        A = np.column_stack([V / f, 1.0 / f])
        b, cov, s, dof = _ols(A, y, ["k", "c"])
        return Fit(["k", "c"], b, cov, s, dof, len(y), extra={"alpha": float(a)})

    def predict(self, p, X, options, extra):
        V, T = X
        alpha = p[2] if len(p) > 2 else float(options.get("alpha", 0.02))
        return (p[0] * V + p[1]) / (1 + alpha * (np.asarray(T, dtype=float) - 25.0))


class TurbidityPchip(Model):
    name = "turbidity_pchip"
    summary = "turbidity: monotone PCHIP through formazin standards (mean raw per standard); no extrapolation"
    n_inputs, input_hint = (1, 1), "turbidity_raw"

    def param_names(self, inputs, options):
        return []

    def fit(self, X, y, options):
        raw = X[0]
        levels = np.unique(np.round(y, 3))
        if levels.size < 3:
            raise SenError(f"{levels.size} formazin standard(s) is too few for a curve",
                           "read at least 3 standards (e.g. 0, 100, 400, 1000 NTU from the 4000 NTU stock)")
        xk = np.array([raw[np.round(y, 3) == L].mean() for L in levels])
        nk = np.array([(np.round(y, 3) == L).sum() for L in levels])
        sk = np.array([raw[np.round(y, 3) == L].std(ddof=1) if n > 1 else np.nan for L, n in zip(levels, nk)])
        d = np.diff(xk)
        if not (np.all(d > 0) or np.all(d < 0)):
            i = int(np.nonzero(np.sign(d) != np.sign(d[0]))[0][0]) if np.any(d != 0) else 0
            raise SenError(f"standards are not monotone: {levels[i]:g} NTU reads {xk[i]:.1f} mV but "
                           f"{levels[i + 1]:g} NTU reads {xk[i + 1]:.1f} mV",
                           "re-make the dilution or re-read the standard; a monotone curve cannot pass through these")
        order = np.argsort(xk)
        xs, ys = xk[order], levels[order]
        interp = PchipInterpolator(xs, ys, extrapolate=False)
        # NTU uncertainty at each knot: local slope × SE of the mean raw reading.
        dydx = interp.derivative()(xs)
        se_x = np.where(np.isfinite(sk[order]), sk[order] / np.sqrt(nk[order]), 0.0)
        se_y = np.abs(dydx) * se_x
        resid = y - interp(raw)
        dof = max(len(y) - len(xs), 1)
        extra = {"knots_raw": xs.tolist(), "knots_ntu": ys.tolist(), "knots_ntu_se": se_y.tolist(),
                 "knots_raw_sd": np.nan_to_num(sk[order]).tolist(), "knots_n": nk[order].tolist()}
        return Fit([], np.zeros(0), np.zeros((0, 0)), float(np.sqrt(np.nansum(resid ** 2) / dof)), dof, len(y),
                   extra=extra, method="PCHIP")

    def predict(self, p, X, options, extra):
        interp = PchipInterpolator(np.array(extra["knots_raw"]), np.array(extra["knots_ntu"]), extrapolate=False)
        return interp(np.asarray(X[0], dtype=float))


class RainPower(Model):
    name = "rain_power"
    summary = "tipping-bucket dynamic correction I = a·Im^b (WMO intercomparisons)"
    n_inputs, input_hint = (1, 1), "rain_intensity"

    def param_names(self, inputs, options):
        return ["a", "b"]

    def fit(self, X, y, options):
        x = X[0]
        ok = (x > 0) & (y > 0)
        if ok.sum() < 4:
            raise SenError(f"only {int(ok.sum())} rows with rain on both gauges", "collect rain events at several intensities")
        lb, *_ = np.linalg.lstsq(np.column_stack([np.ones(ok.sum()), np.log(x[ok])]), np.log(y[ok]), rcond=None)
        f = lambda p, X: p[0] * np.power(X[0], p[1])
        p, cov, s, dof = _curve_fit(f, [x[ok]], y[ok], [float(np.exp(lb[0])), float(lb[1])], ["a", "b"])
        return Fit(["a", "b"], p, cov, s, dof, int(ok.sum()), method="nonlinear LS",
                   extra={"dry_rows_left_out": int((~ok).sum())})

    def predict(self, p, X, options, extra):
        return p[0] * np.power(np.maximum(np.asarray(X[0], dtype=float), 0.0), p[1])


def deming(x, y, lam=1.0):
    """Deming regression (λ = var(y errors)/var(x errors)) -> (intercept, slope)."""
    mx, my = x.mean(), y.mean()
    sxx = ((x - mx) ** 2).mean()
    syy = ((y - my) ** 2).mean()
    sxy = ((x - mx) * (y - my)).mean()
    slope = (syy - lam * sxx + np.sqrt((syy - lam * sxx) ** 2 + 4 * lam * sxy ** 2)) / (2 * sxy)
    return my - slope * mx, slope


class Deming(Model):
    name = "deming"
    summary = "Deming regression, errors in both variables (--lam = var(y err)/var(x err), default 1); jackknife SEs"
    input_hint = "RAW"

    def param_names(self, inputs, options):
        return ["b0", "b1"]

    def fit(self, X, y, options):
        x = X[0]
        n = len(y)
        _fail_small(n, 2)
        lam = float(options.get("lam", 1.0))
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            raise SenError("singular design: x or y is constant", "use data spanning the working range")
        sxy = np.mean((x - x.mean()) * (y - y.mean()))
        if sxy == 0:
            raise SenError("singular design: x and y are uncorrelated", "check the columns are the right ones")
        full = np.array(deming(x, y, lam))
        # Jackknife with leave-one-out moments computed in one vectorised pass.
        Sx, Sy, Sxx, Syy, Sxy = x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()
        m = n - 1
        mx, my = (Sx - x) / m, (Sy - y) / m
        vxx = (Sxx - x * x) / m - mx ** 2
        vyy = (Syy - y * y) / m - my ** 2
        vxy = (Sxy - x * y) / m - mx * my
        b1 = (vyy - lam * vxx + np.sqrt((vyy - lam * vxx) ** 2 + 4 * lam * vxy ** 2)) / (2 * vxy)
        b0 = my - b1 * mx
        loo = np.column_stack([b0, b1])
        cov = (n - 1) / n * (loo - loo.mean(0)).T @ (loo - loo.mean(0))
        resid = y - (full[0] + full[1] * x)
        return Fit(["b0", "b1"], full, cov, float(np.sqrt(resid @ resid / (n - 2))), n - 2, n,
                   method="Deming (jackknife SE)", extra={"lam": lam})

    def predict(self, p, X, options, extra):
        return p[0] + p[1] * X[0]


class Odr(Model):
    name = "odr"
    summary = "orthogonal distance regression (odrpack), errors in both variables; --lam as for Deming"
    input_hint = "RAW"

    def param_names(self, inputs, options):
        return ["b0", "b1"]

    def fit(self, X, y, options):
        import odrpack

        x = X[0]
        n = len(y)
        _fail_small(n, 2)
        if np.ptp(x) == 0:
            raise SenError("singular design: x is constant", "use data spanning the working range")
        lam = float(options.get("lam", 1.0))
        A = np.column_stack([np.ones(n), x])
        b0, *_ = np.linalg.lstsq(A, y, rcond=None)
        res = odrpack.odr_fit(lambda x, b: b[0] + b[1] * x, x, y, b0, weight_x=lam, weight_y=1.0)
        if not res.success:
            raise SenError(f"ODR did not converge ({res.stopreason})", "try --model deming or check the data")
        cov = np.asarray(res.cov_beta) * float(res.res_var)
        resid = y - (res.beta[0] + res.beta[1] * x)
        return Fit(["b0", "b1"], np.asarray(res.beta), cov, float(np.sqrt(resid @ resid / (n - 2))), n - 2, n,
                   method="ODR (odrpack)", extra={"lam": lam})

    def predict(self, p, X, options, extra):
        return p[0] + p[1] * X[0]


def _all_models():
    return (Linear(), Polynomial(), Multilinear(), EpaPA(), EpaPiecewise(), Kohler(), PhNernst(),
            Conductivity(), TurbidityPchip(), RainPower(), Deming(), Odr())


MODELS = {m.name: m for m in _all_models()}


def get(name: str) -> Model:
    if name not in MODELS:
        raise SenError(f"unknown model {name!r}", f"choose one of: {', '.join(MODELS)}")
    return MODELS[name]
