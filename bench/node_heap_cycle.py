# Runs inside real MicroPython 1.27 (bench/node_heap.mjs): how many heap bytes the node
# firmware takes for its code (compiled .mpy modules) and allocates in one cycle of kind
# KIND (set by the bench in the first line). The WebAssembly port cannot collect garbage
# while Python runs, so every byte allocated stays counted: the per-cycle figure is the
# total allocation, an upper bound on the live heap at any instant of the cycle.
import gc
import json
gc.collect()
m0 = gc.mem_alloc()
import machine
import esp32
import app, frame, channels, airtime, state, counter, duty, config, filters, sampling, node
from drivers import sx127x, analog_probe
if KIND == "air":
    from drivers import bme280, pms5003
elif KIND == "water":
    import probes
else:
    import rain
    from drivers import rain_gauge
m1 = gc.mem_alloc()

board = json.load(open("board.json"))
cfg = config.check_node(json.load(open("node.json")))
st = state.State(machine.RTC())
st.load()
cnt = counter.Counter(esp32.NVS("sen"), st)
cnt.start(False)
dut = duty.Duty(st)


class Radio:
    def send(self, data, toa):
        return True

    def receive(self, ms):
        return None

    def sleep(self):
        pass


class Sampler:
    errors = []

    def sample(self, safe=False):
        out = []
        smp = sampling.Sampler(board, cfg, st)
        if KIND == "air":
            b = bme280.BME280(None)
            b._cal = (28110, 26387, 50, 37829, -10605, 3024, 7016, -2, -7, 9900, -10230, 4285, 75, 362, 0, 313, 50, 30)
            ts, ps, hs = [], [], []
            for i in range(3):
                t, p, h = b.compensate(519888 + i, 415148 - i, 27791 + i)
                ts.append(t / 100)
                ps.append(p / 25600)
                hs.append(h / 1024)
            out.append(("air_temp", smp._reduce("air_temp", ts, 0.01), 0))
            out.append(("rh", smp._reduce("rh", hs, 0.05), 0))
            out.append(("pressure", smp._reduce("pressure", ps, 0.02), 0))
            fr = bytearray(32)
            fr[0], fr[1], fr[3] = 0x42, 0x4D, 0x1C
            for i in range(4, 16, 2):
                fr[i + 1] = 30 + i
            s = sum(fr[:30])
            fr[30], fr[31] = s >> 8, s & 0xFF
            rows = [pms5003.parse(fr) for _ in range(5)]
            for idx, nm in ((3, "pm1"), (4, "pm25"), (5, "pm10")):
                out.append((nm, smp._reduce(nm, [r[idx] for r in rows]), 0))
        elif KIND == "water":
            temp = None
            for name in config.WATER_PROBES[:5]:
                p = analog_probe.AnalogProbe(36, cfg["sensors"].get("oversample", 32))
                xs = [p.read_mv() for _ in range(5)]
                mv = filters.median_hampel(xs, filters.HAMPEL_K, 1.0)
                v = probes.convert(name, mv, probes.params(cfg, name), temp)
                if name == "water_temp":
                    temp = v
                out.append((name, v, 0))
        else:
            rain.add_tip(st, 100)
            r = rain.report(st, cfg, None)
            out.append(("rain_tips", r[0], 0))
            out.append(("rain_depth", r[1], 0))
            out.append(("rain_intensity", r[2], 0))
        bat = analog_probe.AnalogProbe(35, 16)
        out.append(("battery", filters.median_hampel([bat.read_mv() for _ in range(3)]) * 2 / 1000, 0))
        return out


n = node.Node(cfg, st, cnt, dut, Radio(), Sampler())
m2 = gc.mem_alloc()
n.cycle(True)
line = n.log_line(900)
st.save()
m3 = gc.mem_alloc()
print(line)
print("HEAP", m1 - m0, m3 - m1)
