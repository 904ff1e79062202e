"""Browser tests: each page of the status page in headless Chromium against a running gateway
service fed with firmware-encoded frames. Live update, language switch and screenshots too.
Order matters only at the end: the live-update test adds frames last."""
import datetime as dt
import math
import struct
import time
from zoneinfo import ZoneInfo

from sen.gateway import aqi
from sen.gateway.status_page import scene

from .conftest import TOKEN, show


def gw_token():
    return TOKEN

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def vi_num(v, digits=1):
    """A number as vi-VN prints it with at most `digits` decimals (comma decimal, no trailing zeros)."""
    s = f"{round(v, digits):.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(v))
    ip, _, frac = s.partition(".")
    neg = ip.startswith("-")
    ip = ip.lstrip("-")
    groups = []
    while len(ip) > 3:
        groups.insert(0, ip[-3:])
        ip = ip[:-3]
    groups.insert(0, ip)
    return ("-" if neg else "") + ".".join(groups) + ("," + frac if frac else "")


def api(page, path):
    return page.evaluate("p => fetch(p).then(r => r.json())", path)


def test_overview_lists_every_node_and_makes_problems_stand_out(gw, page):
    show(page, gw.url, "overview", "overview")
    rows = page.locator("tr[data-node]")
    db_nodes = [r[0] for r in gw.q("SELECT node_id FROM nodes ORDER BY node_id")]
    assert sorted(int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.node)")) == db_nodes
    assert len(db_nodes) == len(scene.NODES)

    silent = page.locator(f"tr[data-node='{scene.SILENT_NODE}']")
    assert "problem" in silent.get_attribute("class")
    assert "Im lặng" in silent.inner_text()
    low = page.locator(f"tr[data-node='{scene.LOW_BATTERY_NODE}']")
    text = low.inner_text()
    assert "Pin yếu" in text and "kẹt" in text  # low battery and a stuck PM sensor
    mic = gw.q("SELECT mic_failures FROM nodes WHERE node_id=?", scene.FORGED_NODE)[0][0]
    assert mic > 0
    assert low.locator("td[data-label='Lỗi MIC']").inner_text().strip() == str(mic)
    assert "bad" in low.locator("td[data-label='Lỗi MIC']").get_attribute("class")
    healthy = page.locator("tr[data-node='101']")
    assert "problem" not in (healthy.get_attribute("class") or "")
    reboots = gw.q("SELECT reboots FROM nodes WHERE node_id=101")[0][0]
    assert reboots == 2  # power-on plus the mid-run watchdog reset
    assert healthy.locator("td[data-label='Khởi động lại']").inner_text().strip() == "2"

    # RSSI/SNR of the best copy: node 201 is heard by two gateways
    last = gw.q("SELECT last FROM nodes WHERE node_id=201")[0][0]
    copies = gw.q("SELECT rssi, snr FROM rx WHERE node_id=201 AND counter=?", last)
    if "rssi" in {r[1] for r in gw.q("PRAGMA table_info(frames)")}:  # the first copy lives in frames
        copies += gw.q("SELECT rssi, snr FROM frames WHERE node_id=201 AND counter=?", last)
    copies.sort(reverse=True)
    link = page.locator("tr[data-node='201'] td[data-label='RSSI / SNR']").inner_text()
    assert link.startswith(f"{vi_num(copies[0][0])} dBm / {vi_num(copies[0][1])} dB")
    if len(copies) > 1:
        assert f"({len(copies)} bản sao)" in link
    rej = dict(gw.q("SELECT reason, count FROM rejections"))
    assert f"bad_mic: {rej['bad_mic']}" in page.locator("main").inner_text()
    assert page.errors == []


def test_node_page_plots_raw_and_calibrated_with_flags_and_calibration(gw, page):
    show(page, gw.url, "node/101", "node")
    chans = {r[0] for r in gw.q("SELECT DISTINCT channel FROM readings WHERE node_id=101")}
    cards = page.locator("section.card[data-channel]")
    assert cards.count() == len(chans)
    for i in range(cards.count()):
        c = cards.nth(i)
        assert len(c.locator("path.line.cal").get_attribute("d")) > 100
        assert c.locator("path.line.raw").count() == 1
    pm = page.locator("section.card[data-channel='pm25']")
    # the approved v1 record (0.8·raw − 2) is active: calibrated differs from raw
    raw, val = gw.q("SELECT raw, value FROM readings WHERE node_id=101 AND channel=5 ORDER BY time DESC LIMIT 1")[0]
    assert math.isclose(val, 0.8 * raw - 2.0, abs_tol=1e-9)
    assert pm.locator(".latest .value").inner_text() == vi_num(val, 3)
    cal = pm.locator(".calbox").inner_text()
    assert "node101/pm25/v1" in cal and "Nguyễn Văn An" in cal
    assert "node101/pm25/v2" in cal and "Không đạt" in cal  # the draft fails its 24 h checks
    assert pm.locator("button[data-approve='node101-pm25-v2.json']").count() == 1

    # quality flags are marked: node 102's PM2.5 has stuck and warming-up readings
    show(page, gw.url, "node/102", "node")
    doc = api(page, "/api/node/102?window=24h")
    w = doc["window"]
    n_flag = gw.q("SELECT COUNT(*) FROM readings WHERE node_id=102 AND channel=5 AND qflags != 0 AND time >= ? AND time <= ?",
                  w["t0"], w["t1"])[0][0]
    assert n_flag > 0
    pm = page.locator("section.card[data-channel='pm25']")
    assert pm.locator("circle.flag").count() == n_flag
    assert f"có cờ ({n_flag})" in pm.locator(".legend").inner_text()

    # 7-day window: all stored readings of the channel appear
    page.locator("a[data-window='7d']").click()
    page.wait_for_function("() => location.hash.endsWith('/7d') && document.querySelector(\"a[data-window='7d'].on\")")
    page.wait_for_function("() => document.querySelector(\"section.card[data-channel='pm25'] .legend\")")
    doc7 = api(page, "/api/node/102?window=7d")
    n7 = gw.q("SELECT COUNT(*) FROM readings WHERE node_id=102 AND channel=5 AND time >= ?", doc7["window"]["t0"])[0][0]
    legend = page.locator("section.card[data-channel='pm25'] .legend").inner_text()
    assert f"{vi_num(n7, 0)} điểm" in legend
    assert page.errors == []


def hourly_means_from_db(gw, node, channel, hour_start):
    rows = gw.q("SELECT time, value FROM readings WHERE node_id=? AND channel=? AND qflags=0 AND value IS NOT NULL"
                " AND time >= ? AND time < ?", node, channel, hour_start - 11 * 3600, hour_start + 3600)
    return aqi.hourly_means([r[0] for r in rows], [r[1] for r in rows], hour_start + 3600, 12)


def test_air_page_shows_vn_aqi_with_categories_and_colours(gw, page):
    show(page, gw.url, "air", "air")
    doc = api(page, "/api/air")
    st = next(s for s in doc["stations"] if s["id"] == 101)
    h = st["current"]["t"]
    expected = aqi.hourly_aqi(pm25_hours=hourly_means_from_db(gw, 101, 5, h),
                              pm10_hours=hourly_means_from_db(gw, 101, 6, h))
    badge = page.locator("section[data-station='101'] .now .aqi.big")
    assert badge.inner_text().split() [0] == str(expected["aqi"])
    assert expected["vi"] in badge.inner_text()
    r, g, b = expected["rgb"]
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == f"rgb({r}, {g}, {b})"
    # hourly bars coloured by category, daily badges for 7 days
    bars = page.locator("section[data-station='101'] svg.bars rect.bar")
    assert bars.count() == sum(1 for x in st["hourly"] if x["aqi"] is not None)
    assert page.locator("section[data-station='101'] .day").count() == 7
    # yesterday's daily AQI from the 24-h means of the local calendar day
    y = dt.datetime.fromtimestamp(time.time(), TZ).date() - dt.timedelta(days=1)
    start = dt.datetime.combine(y, dt.time(0), TZ).timestamp()
    m = {ch: gw.q("SELECT AVG(value) FROM readings WHERE node_id=101 AND channel=? AND qflags=0 AND time>=? AND time<?",
                  ch, start, start + 86400)[0][0] for ch in (5, 6)}
    want = aqi.daily_aqi(pm25_24h=round(m[5], 1), pm10_24h=round(m[6], 1))
    day = page.locator("section[data-station='101'] .day").nth(5)
    assert day.locator(".aqi").inner_text().split()[0] == str(want["aqi"])
    legend = page.locator("main").inner_text()
    for name in ("Tốt", "Trung bình", "Kém", "Xấu", "Rất xấu", "Nguy hại"):
        assert name in legend
    assert "QCVN 05:2023" in legend
    assert page.errors == []


def test_water_values_against_qcvn_and_rain_totals(gw, page):
    show(page, gw.url, "water", "water")
    do = gw.q("SELECT value FROM readings WHERE node_id=201 AND channel=13 AND value IS NOT NULL ORDER BY time DESC LIMIT 1")[0][0]
    ph = gw.q("SELECT value FROM readings WHERE node_id=201 AND channel=9 ORDER BY time DESC LIMIT 1")[0][0]
    do_row = page.locator("section[data-station='201'] tr[data-param='dissolved_oxygen']")
    ph_row = page.locator("section[data-station='201'] tr[data-param='ph']")
    # QCVN 08:2023 class B (the default target): DO >= 5.0 mg/L, pH 6.0–8.5
    assert ("problem" in (do_row.get_attribute("class") or "")) == (do < 5.0)
    assert ("problem" in (ph_row.get_attribute("class") or "")) == (not 6.0 <= ph <= 8.5)
    do_class = "A" if do >= 6 else "B" if do >= 5 else "C" if do >= 4 else "D"
    assert do_row.locator("td[data-label='Đạt loại']").inner_text().strip() == do_class
    assert "không có giới hạn" in page.locator("section[data-station='201'] tr[data-param='turbidity']").inner_text()
    # rain: daily totals of rain_depth per local day
    titles = page.locator("section[data-station='301'] svg.bars").first.locator("rect title").evaluate_all(
        "ts => ts.map(t => t.textContent)")
    assert len(titles) == 7
    for k, title in enumerate(titles):
        day = dt.datetime.fromtimestamp(time.time(), TZ).date() - dt.timedelta(days=6 - k)
        start = dt.datetime.combine(day, dt.time(0), TZ).timestamp()
        tot = gw.q("SELECT SUM(value) FROM readings WHERE node_id=301 AND channel=15 AND time>=? AND time<?",
                   start, start + 86400)[0][0]
        if tot is None:
            assert title.endswith("— mm")
        else:
            assert title == f"{day.isoformat()}: {vi_num(tot, 1)} mm"
    assert sum(gw.q("SELECT COUNT(*) FROM readings WHERE node_id=301 AND channel=15 AND value > 0")[0]) > 0
    assert page.errors == []


def test_forwarders_page_shows_depth_health_and_errors(gw, page):
    # let the healthy forwarder drain and the dead one fail at least once
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ob = dict((r[0], r[1:]) for r in gw.q("SELECT name, cursor, last_error, last_ok FROM outbox"))
        head = gw.q("SELECT MAX(id) FROM readings")[0][0]
        if ob.get("ngsi_ld", (0,))[0] == head and ob.get("sensorthings", (0, None))[1]:
            break
        time.sleep(0.2)
    show(page, gw.url, "forwarders", "forwarders")
    good = page.locator("tr[data-forwarder='ngsi_ld']")
    bad = page.locator("tr[data-forwarder='sensorthings']")
    assert "Tốt" in good.inner_text() and good.locator("td.depth").inner_text() == "0"
    assert "Lỗi" in bad.inner_text() and "problem" in bad.get_attribute("class")
    cursor = gw.q("SELECT cursor FROM outbox WHERE name='sensorthings'")[0][0]
    assert bad.locator("td.depth").inner_text() == vi_num(head - cursor, 0)
    assert "127.0.0.1" in bad.locator("td[data-label='Lỗi gần nhất']").inner_text()
    assert len(gw.receiver.bodies) > 0
    assert page.errors == []


def test_language_switch_to_english_and_back(gw, page):
    show(page, gw.url, "air", "air")
    assert page.locator("#nav a[href='#/overview']").inner_text() == "Tổng quan"
    page.locator("#lang").click()
    assert page.locator("#nav a[href='#/overview']").inner_text() == "Overview"
    assert page.evaluate("document.documentElement.lang") == "en"
    text = page.locator("main").inner_text()
    assert "Hourly VN_AQI" in text and "Moderate" in text and "Hazardous" in text
    page.reload()  # the choice persists
    page.wait_for_function("() => document.body.dataset.view === 'air'")
    assert page.locator("#nav a[href='#/overview']").inner_text() == "Overview"
    page.locator("#lang").click()
    assert "VN_AQI theo giờ" in page.locator("main").inner_text()
    assert page.errors == []


SHOTS = [("overview", "overview", "overview"), ("node/101", "node", "node"), ("air", "air", "air"),
         ("water", "water", "water-rain"), ("forwarders", "forwarders", "forwarders"),
         ("node/102/7d", "node", "node-week")]


def small_png(png: bytes, path):
    """A 96-colour palette PNG: the page's flat colours survive, the file stays small."""
    import io

    from PIL import Image
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_screenshots_in_both_languages_and_at_phone_width(gw, browser, shot_dir):
    made = []
    for lang in ("vi", "en"):
        for width, height, tag, views in ((1280, 860, "desktop", SHOTS), (390, 844, "phone", SHOTS[:3])):
            ctx = browser.new_context(viewport={"width": width, "height": height})
            ctx.add_init_script(f"localStorage.setItem('sen.lang', '{lang}')")
            pg = ctx.new_page()
            for route, view, name in views:
                show(pg, gw.url, route, view)
                assert pg.evaluate("document.documentElement.lang") == lang
                if tag == "phone":  # cards, not a sideways-scrolling table
                    assert pg.evaluate("document.documentElement.scrollWidth") <= width + 1
                path = shot_dir / f"status-{name}-{lang}-{tag}.png"
                full_h = pg.evaluate("document.documentElement.scrollHeight")
                png = pg.screenshot(clip={"x": 0, "y": 0, "width": width,
                                          "height": min(full_h, 1500 if tag == "desktop" else 1700)}, full_page=True)
                small_png(png, path)
                made.append(path)
            ctx.close()
    for p in made:
        w, h = png_size(p)
        assert w in (1280, 390) and h > 300
        assert p.stat().st_size < 150_000, f"{p.name} is {p.stat().st_size} bytes"


def test_live_update_without_reload(gw, page):
    from .conftest import MediumLink
    show(page, gw.url, "overview", "overview")
    page.evaluate("window.__same_document = true")
    row = page.locator("tr[data-node='301'] td[data-label='Bộ đếm']")
    before = gw.q("SELECT last FROM nodes WHERE node_id=301")[0][0]
    assert row.inner_text() == vi_num(before, 0)
    # the rain gauge's next frame goes over the emulator's radio medium into the running gateway
    link = MediumLink(gw.svc)
    try:
        frame_bytes, _ = gw.scene.one_frame(301, time.time(), [(7, 196, 0), (15, 12, 0), (16, 35, 0)])
        link.send(frame_bytes)
    finally:
        link.stop()
    page.wait_for_function("n => document.querySelector(\"tr[data-node='301'] td[data-label='Bộ đếm']\").innerText === n",
                           arg=vi_num(before + 1, 0), timeout=10_000)
    cols = {r[1] for r in gw.q("PRAGMA table_info(frames)")}
    rssi, snr = (gw.q("SELECT rssi, snr FROM frames WHERE node_id=301 AND counter=?", before + 1)[0] if "rssi" in cols
                 else gw.q("SELECT rssi, snr FROM rx WHERE node_id=301 AND counter=?", before + 1)[0])
    assert rssi < -80  # the medium's path loss over ~825 m, not the scene's made-up figures
    link_text = page.locator("tr[data-node='301'] td[data-label='RSSI / SNR']").inner_text()
    assert link_text.startswith(f"{vi_num(rssi)} dBm / {vi_num(snr)} dB")
    # the silent node comes back: its problem clears live
    assert "problem" in page.locator(f"tr[data-node='{scene.SILENT_NODE}']").get_attribute("class")
    gw.inject([gw.scene.one_frame(scene.SILENT_NODE, time.time(),
                                  [(1, 290, 0), (2, 150, 0), (3, 10080, 0), (5, 30, 0), (6, 45, 0), (7, 197, 0)])])
    page.wait_for_function(f"() => !document.querySelector(\"tr[data-node='{scene.SILENT_NODE}']\").classList.contains('problem')",
                           timeout=10_000)
    assert page.evaluate("window.__same_document") is True
    # on a node page, the newest reading appears in its card
    show(page, gw.url, "node/201", "node")
    page.evaluate("window.__same_document = true")
    gw.inject([gw.scene.one_frame(201, time.time(), [(7, 195, 0), (9, 755, 0), (13, 812, 0)])])
    page.wait_for_function("() => document.querySelector(\"section[data-channel='dissolved_oxygen'] .latest .value\").innerText === '8,12'",
                           timeout=10_000)
    assert page.evaluate("window.__same_document") is True
    assert page.errors == []


def test_operator_actions_through_the_page(gw, page):
    """Runs last: it rotates node 102's key. Token entered in the operator panel; the page
    sends it with the CSRF header; dialogs ask for the override reason and confirmation."""
    import json as _json
    show(page, gw.url, "node/101", "node")
    # without a token the page refuses before sending and says why
    page.locator("button[data-approve='node101-pm25-v2.json']").click()
    page.wait_for_function("() => !document.getElementById('toast').hidden")
    assert "Cần mã vận hành" in page.locator("#toast").inner_text()
    page.locator("#opbtn").click()
    page.locator("#optoken").fill("wrong-token-of-sufficient-length")
    page.locator("#opby").fill("Lê Văn Cường")
    page.locator("#opsave").click()
    page.once("dialog", lambda d: d.accept("đã kiểm tra với trạm chuẩn"))
    page.locator("button[data-approve='node101-pm25-v2.json']").click()
    page.wait_for_function("() => document.getElementById('toast').innerText.includes('401')")
    rec = _json.loads((gw.records / "node101-pm25-v2.json").read_text())
    assert rec["status"] == "draft"
    page.locator("#optoken").fill(gw_token())
    page.locator("#opsave").click()
    page.once("dialog", lambda d: d.accept("đã kiểm tra với trạm chuẩn"))
    page.locator("button[data-approve='node101-pm25-v2.json']").click()
    page.wait_for_function("() => document.querySelector(\"section[data-channel='pm25'] .calbox\").innerText.includes('node101/pm25/v2 ·')")
    rec = _json.loads((gw.records / "node101-pm25-v2.json").read_text())
    assert rec["status"] == "approved" and rec["approved_by"] == "Lê Văn Cường"
    assert rec["approval_note"] == "đã kiểm tra với trạm chuẩn"

    # resend: the forwarder's cursor moves back by the readings of the last hour
    show(page, gw.url, "forwarders", "forwarders")
    before = gw.q("SELECT cursor FROM outbox WHERE name='ngsi_ld'")[0][0]
    row = page.locator("tr[data-forwarder='ngsi_ld']")
    row.locator("input.hours").fill("1")
    row.locator("button.action").click()
    page.wait_for_function("() => document.getElementById('toast').innerText.includes('Đã xếp lại')")
    n = int(page.locator("#toast").inner_text().split()[3].replace(".", ""))
    assert n > 0
    assert before - n >= 0

    # rotate: confirmation dialog, then the new key is shown once and is the key file's
    show(page, gw.url, "node/102", "node")
    old = gw.svc.keys.get(102)
    page.once("dialog", lambda d: d.accept())
    page.locator("button.action.subtle").click()
    page.wait_for_function("() => document.getElementById('toast').innerText.includes('Khoá mới')")
    shown = page.locator("#toast").inner_text().rsplit(" ", 1)[1]
    from sen.gateway.key_store import KeyStore
    new = KeyStore(gw.cfg.key_file).get(102)
    assert new != old and new.hex() == shown
    # the one refused request shows in the console as a failed resource load, nothing else
    assert all("401" in e for e in page.errors), page.errors
