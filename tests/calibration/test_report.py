"""The HTML report renders in headless Chromium with real plots (checked on the screenshot's pixels)."""
import re
import shutil
import subprocess

import numpy as np
from PIL import Image


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _screenshot(html, png, profile, height):
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size=1200,{height}",
                    html.as_uri()], check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _count(img, rgb, tol=40):
    return int((np.abs(img - np.array(rgb)).sum(axis=2) < tol).sum())


def test_report_renders_with_plots_in_chromium(sen, epa_csv, ph_csv, tmp_path):
    recs = tmp_path / "records"
    for args in ((epa_csv, "epa_pa", "ref_pm25", "pm25_cf1,rh"), (ph_csv, "ph_nernst", "buffer_ph", "ph_raw,water_temp")):
        code, out, err = sen("cal", "fit", args[0], "--model", args[1], "--target", args[2], "--inputs", args[3],
                             "--out", recs, "--node", "14", "--crew", "Team Son Tra", "--reference", "BAM-1020")
        assert code == 0, err
    html = tmp_path / "report.html"
    code, out, err = sen("cal", "report", recs / "node14-pm25-v1.json", recs / "node14-ph-v1.json", "--out", html)
    assert code == 0, err
    text = html.read_text()
    # Self-contained: nothing is fetched (XML namespace URIs are names, not loads).
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text) and "<script" not in text
    assert "<link" not in text
    assert text.count("<svg") >= 6 and "EPA 2021 target" in text and "95 % prediction band" in text
    assert "Residuals vs rh" in text and "Residuals vs air_temp" in text and "Residuals vs water_temp" in text
    img = _screenshot(html, tmp_path / "top.png", tmp_path / "profile", 2400)
    assert img.shape[:2] == (2400, 1200)
    non_white = (img.sum(axis=2) < 720).mean()
    assert non_white > 0.03, non_white
    # Plot pixels, not just text: the fit line and bands (#c53030), the scatter (#2b6cb0 / #2f855a),
    # and the PASS cells of the metrics table (#c6f6d5).
    assert _count(img, (0xC5, 0x30, 0x30)) > 300
    assert _count(img, (0x2F, 0x85, 0x5A)) + _count(img, (0x2B, 0x6C, 0xB0)) > 300
    assert _count(img, (0xC6, 0xF6, 0xD5)) > 2000


def test_report_needs_its_data(sen, epa_csv, tmp_path):
    code, out, err = sen("cal", "fit", epa_csv, "--model", "epa_pa", "--target", "ref_pm25", "--inputs",
                         "pm25_cf1,rh", "--out", tmp_path / "r.json", "--node", "1")
    assert code == 0
    moved = tmp_path / "moved.csv"
    epa_csv.rename(moved)
    code, out, err = sen("cal", "report", tmp_path / "r.json", "--out", tmp_path / "x.html")
    assert code == 2 and "--data" in err and not (tmp_path / "x.html").exists()
    code, out, err = sen("cal", "report", tmp_path / "r.json", "--out", tmp_path / "x.html", "--data", moved)
    assert code == 0 and (tmp_path / "x.html").stat().st_size > 10000
