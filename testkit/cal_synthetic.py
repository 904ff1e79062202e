"""Synthetic co-location data from known curves with realistic noise (tests, bench, demos).

The truth is the model itself: the reference equals the curve applied to the node's raw
readings plus reference noise, so a fit should recover the curve within its intervals.
"""
import csv

import numpy as np

from sen.calibration.timeparse import iso

EPA_TRUE = {"a": 0.524, "b": -0.0852, "c": 5.72}
PH_TRUE = {"E7_mV": 12.0, "S25_mV_per_pH": 56.8}


def epa_colocation(rng, days=30, start=1793491200.0, noise=2.5):
    """Hourly PurpleAir cf1, RH and a reference following the EPA form (Da Nang–like humid climate)."""
    n = int(days * 24)
    t = start + 3600.0 * np.arange(n)
    hour = (t / 3600.0 + 7) % 24  # local time, UTC+7
    diurnal = 1 + 0.35 * np.cos(2 * np.pi * (hour - 7) / 24)  # morning traffic peak
    weather = np.exp(np.convolve(rng.normal(0, 0.35, n + 48), np.ones(48) / np.sqrt(48), "same")[:n] * 0.6)
    cf1 = np.clip(32.0 * diurnal * weather * rng.lognormal(0, 0.15, n), 2, 400)
    rh = np.clip(78 - 14 * np.cos(2 * np.pi * (hour - 4) / 24) + rng.normal(0, 5, n), 35, 99)
    temp = 27 + 4 * np.cos(2 * np.pi * (hour - 14) / 24) + rng.normal(0, 0.8, n)
    ref = EPA_TRUE["a"] * cf1 + EPA_TRUE["b"] * rh + EPA_TRUE["c"] + rng.normal(0, noise, n)
    return t, {"pm25_cf1": cf1, "rh": rh, "air_temp": temp, "ref_pm25": ref}


def ph_two_point(rng, buffers=(4.01, 7.00), readings=60, noise_mv=0.8, start=1793491200.0):
    """Probe readings (mV) in two buffers, 1 s apart, water near 27 °C."""
    t, E, T, pH = [], [], [], []
    now = start
    for b in buffers:
        temp = 27.0 + rng.normal(0, 0.3) + rng.normal(0, 0.05, readings)
        tau = (temp + 273.15) / 298.15
        e = PH_TRUE["E7_mV"] + PH_TRUE["S25_mV_per_pH"] * tau * (7.0 - b) + rng.normal(0, noise_mv, readings)
        t += list(now + np.arange(readings))
        now += readings + 120
        E += list(e)
        T += list(temp)
        pH += [b] * readings
    return np.array(t), {"ph_raw": np.array(E), "water_temp": np.array(T), "buffer_ph": np.array(pH)}


def write_csv(path, t, cols, units=None):
    units = units or {}
    names = list(cols)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time"] + [f"{n}[{units[n]}]" if n in units else n for n in names])
        for i in range(len(t)):
            w.writerow([iso(t[i])] + [f"{cols[n][i]:.4f}" for n in names])
    return path
