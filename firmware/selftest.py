# On-device self-test for technicians: `import selftest; selftest.run()` (via mpremote).
# One line per check: "[selftest] PASS|FAIL <check>: <detail>", then a summary line
# "[selftest] RESULT PASS|FAIL n/m". Sends one test frame (not counted as data: it
# carries only the battery channel, with a fresh counter).
import time


def _line(ok, name, detail):
    print("[selftest] %s %s: %s" % ("PASS" if ok else "FAIL", name, detail))
    return ok


def run(send_frame=True):
    import config
    import state as st
    import machine
    results = []
    try:
        board, cfg = config.load()
    except config.ConfigError as e:
        _line(False, "config", str(e))
        print("[selftest] RESULT FAIL 0/1")
        return False
    results.append(_line(True, "config", "node %d kind %s board %s" % (
        cfg["node_id"], cfg["kind"], board.get("id", "?"))))
    s = st.State(machine.RTC())
    s.load()
    from sampling import Sampler
    smp = Sampler(board, cfg, s)
    kind = cfg["kind"]
    if kind == "air":
        try:
            smp.power().on()
            b = smp.bme()
            b.init()
            t, p, h = b.read()
            results.append(_line(True, "bme280", "T=%.2f C RH=%.1f %% P=%.1f hPa" % (t, h, p)))
        except Exception as e:
            results.append(_line(False, "bme280", "no answer (%s)" % e))
        try:
            pm = smp.pms()
            pm.wake()
            pm.passive()
            r = None
            for _ in range(3):
                try:
                    r = pm.read()
                    break
                except Exception:
                    time.sleep_ms(300)
            pm.sleep()
            if r is None:
                raise OSError("no frame")
            results.append(_line(True, "pms5003", "frame ok, PM2.5=%d (not warmed up)" % r[4]))
        except Exception as e:
            results.append(_line(False, "pms5003", "no answer (%s)" % e))
        try:
            smp.power().off()
        except Exception:
            pass
    elif kind == "water":
        try:
            smp.power().on()
            probes = smp.probes()
            if not probes:
                results.append(_line(False, "probes", "none fitted on this board"))
            for name in probes:
                mv = probes[name].read_mv()
                ok = 5 <= mv <= 3250
                results.append(_line(ok, "probe " + name, "%.1f mV%s" % (mv, "" if ok else " (open or shorted)")))
            smp.power().off()
        except Exception as e:
            results.append(_line(False, "probes", str(e)))
    elif kind == "rain":
        try:
            import app
            g = app._gauge(board)
            if g is None:
                raise OSError("no rain_gauge pin in board.json")
            results.append(_line(True, "rain gauge", "pin reads %s" % ("closed" if g.active() else "open")))
        except Exception as e:
            results.append(_line(False, "rain gauge", str(e)))
    v = None
    try:
        bat = smp.battery()
        v = bat.read_mv() * config.board_get(board, "adc", "battery_ratio", 2.0) / 1000
        results.append(_line(1.0 < v < 6.0, "battery", "%.2f V" % v))
    except Exception as e:
        results.append(_line(False, "battery", str(e)))
    radio = None
    try:
        from config import make_radio
        radio = make_radio(board, cfg)
        results.append(_line(True, "radio", "SX127x version 0x%02x, %.1f MHz SF%d" % (
            radio.version(), radio.frequency() / 1e6, cfg["radio"]["sf"])))
    except Exception as e:
        results.append(_line(False, "radio", str(e)))
    if send_frame and radio is not None and kind != "receiver":
        try:
            import frame
            import airtime
            from counter import Counter
            import esp32
            c = Counter(esp32.NVS("sen"), s)
            c.start(False)  # a test frame is a restart as far as the gateway is concerned
            fr = frame.Framer(cfg["node_id"], cfg["key_bytes"])
            n = c.take()
            fr.begin(n, frame.UP_BOOT)
            from channels import scaled, CHANNELS
            bv = scaled("battery", v)
            fr.reading(CHANNELS["battery"][0], bv[0], bv[1])
            data = bytes(fr.end())
            r = cfg["radio"]
            toa = airtime.time_on_air_us(len(data), r["sf"], r["bw_hz"], r["cr"], r["preamble"]) / 1000
            ok = radio.send(data, int(toa))
            radio.sleep()
            results.append(_line(ok, "test frame", "%d B cnt=%d toa=%d ms%s" % (
                len(data), n, toa, "" if ok else " (no TxDone)")))
        except Exception as e:
            results.append(_line(False, "test frame", str(e)))
    s.save()
    good = sum(1 for r in results if r)
    ok = good == len(results)
    print("[selftest] RESULT %s %d/%d" % ("PASS" if ok else "FAIL", good, len(results)))
    return ok
