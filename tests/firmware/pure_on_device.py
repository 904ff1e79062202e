# Runs inside real MicroPython 1.27 (WebAssembly port): the firmware's pure modules behave
# as under CPython. Prints one "CHECK name ok|bad detail" line per check, then "RESULT bad n".
import filters, state, counter, duty, config, rain, node
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print("CHECK", name, "ok" if ok else "bad", detail)


class NVS:
    def __init__(s):
        s.d = {}

    def set_blob(s, k, v):
        s.d[k] = bytes(v)

    def get_blob(s, k, b):
        if k not in s.d:
            raise OSError(-4354)
        b[:4] = s.d[k]
        return 4

    def commit(s):
        pass


class RTC:
    m = b""

    def memory(s, d=None):
        if d is None:
            return s.m
        s.m = bytes(d)


r = RTC()
nv = NVS()
st = state.State(r)
st.load()
c = counter.Counter(nv, st, 16)
c.start(False)
got = [c.take() for _ in range(20)]
check("counter_sequence", got == list(range(20)), got)
st2 = state.State(r)
st2.load()
c2 = counter.Counter(nv, st2, 16)
check("counter_restart_skips_block", c2.start(False) == 32)
st.q_push(100, [(1, 312, 0), (2, None, 1), (3, -7, 2)])
st.save()
st3 = state.State(r)
check("rtc_block_valid", st3.load())
check("queue_roundtrip", list(st3.q_items()) == [(100, [(1, 312, 0), (2, None, 1), (3, -7, 2)])])
check("median_hampel", filters.median_hampel([25.1, 25.2, 25.0, 85.0, 25.1]) == 25.1)
check("trimmed_mean", filters.trimmed_mean([1.0, 100.0, 10.0, 12.0, 14.0]) == 12.0)
d = duty.Duty(st)
n = 0
while d.allows(360000, 1000):
    d.spend(360000, 1000)
    n += 1
check("duty_36s_per_hour", n == 36, n)
cfg = config.check_node({"node_id": 7, "key": "00112233445566778899aabbccddeeff", "kind": "rain",
                         "radio": {"tx_dbm": 17}})
check("config_key", cfg["key_bytes"] == bytes(range(0, 256, 17)), cfg["key_bytes"])
check("config_eirp_clamp", cfg["radio"]["tx_dbm"] == 14, cfg["radio"]["tx_dbm"])
try:
    config.check_node({"node_id": 7, "key": "zz" * 16, "kind": "rain"})
    check("config_bad_key", False)
except config.ConfigError:
    check("config_bad_key", True)
rain.add_tip(st, 600)
rain.add_tip(st, 610)
rain.add_tip(st, 700)
tot, depth, inten = rain.report(st, {"sensors": {}})
check("rain_report", (tot, round(depth, 3), round(inten, 3)) == (3, 0.6, 24.0), (tot, depth, inten))
bad = results.count(False)
print("RESULT", bad, len(results))
