"""A simulated city for the ingest test and benchmark: gateways with overlapping coverage,
air nodes sending through the firmware's own encoder, and for every frame the set of
gateways that heard it with their RSSI/SNR (log-distance link budget from the emulator).

Nothing here touches the ingest: it produces what gateways' radios would have received,
plus the truth to check the store against.
"""
import math
import random
from dataclasses import dataclass

from sen.emulator.path_loss import LinkBudget, distance_m
from sen.firmware_modules import load
from sen.gateway.raw_log import RawLog
from sen.gateway.rx_meta import RxMeta
from sen.testkit.synthetic import node_key
from sen.gateway.uplink_publisher import UplinkPublisher

AIR = (1, 2, 3, 5, 6, 7)  # air_temp, rh, pressure, pm25, pm10, battery
TX_DBM = 14.0
GAINS_DB = 2.0
SF = 7
BW = 125_000
FREQS = (921_400_000, 921_600_000, 921_800_000, 922_000_000)


@dataclass(slots=True)
class SimFrame:
    t: float
    node_id: int
    counter: int
    frame: bytes
    heard: list  # [(gateway index, rssi, snr)], strongest first
    readings: list  # [(channel id, scaled)]


class City:
    def __init__(self, n_nodes: int = 2000, n_gateways: int = 8, interval_s: int = 300, hours: float = 1.0,
                 seed: int = 10, t0: float = 1_795_000_000.0, max_copies: int = 4, key_seed: int = 10):
        self.rng = random.Random(seed)
        self.n_gateways = n_gateways
        self.interval_s = interval_s
        self.hours = hours
        self.t0 = t0
        self.max_copies = max_copies
        self.link = LinkBudget(exponent=3.0)
        self.noise = self.link.noise_floor_dbm(BW)
        self.snr_min = self.link.snr_limit_db(SF)
        # gateways on a 2-row grid, 4 km apart (Da Nang's pilot had 8 base stations)
        cols = max(1, math.ceil(n_gateways / 2))
        self.gateways = [(f"gw-{i + 1:02d}", ((i % cols) * 4000.0, (i // cols) * 4000.0)) for i in range(n_gateways)]
        w, h = (cols - 1) * 4000.0 + 4000.0, 8000.0
        self.nodes = list(range(1, n_nodes + 1))
        self.keys = {n: node_key(n, key_seed) for n in self.nodes}
        self.pos = {n: (self.rng.uniform(-2000, w - 2000), self.rng.uniform(-2000, h - 2000)) for n in self.nodes}
        # fixed shadowing per link (buildings), fresh fading per frame
        self.shadow = {(n, g): self.rng.gauss(0, 6.0) for n in self.nodes for g in range(n_gateways)}
        self.phase = {n: self.rng.uniform(0, interval_s) for n in self.nodes}
        self.first_counter = {n: self.rng.randrange(0, 200) * 1024 for n in self.nodes}

    def gateway_ids(self) -> list[str]:
        return [g for g, _ in self.gateways]

    def key_file_json(self) -> dict:
        return {"nodes": {str(n): {"key": k.hex(), "status": "active", "updated": 0} for n, k in self.keys.items()}}

    def _heard(self, node: int) -> list:
        out = []
        for g, (_, gpos) in enumerate(self.gateways):
            rssi = self.link.rssi_dbm(TX_DBM, distance_m(self.pos[node], gpos), gains_db=GAINS_DB,
                                      shadowing_db=self.shadow[(node, g)]) + self.rng.gauss(0, 2.0)
            out.append((g, round(rssi, 1), round(rssi - self.noise, 1)))
        out.sort(key=lambda x: -x[1])
        ok = [x for x in out if x[2] >= self.snr_min][:self.max_copies]
        return ok or out[:1]  # a node out of everyone's reach would not be deployed; keep its best link

    def frames(self) -> list[SimFrame]:
        """Every frame of the simulated span, in time order."""
        frame = load("frame")
        out = []
        n_per_node = int(self.hours * 3600 // self.interval_s)
        for n in self.nodes:
            fr = frame.Framer(n, self.keys[n])
            for i in range(n_per_node):
                c = self.first_counter[n] + i
                readings = [(1, self.rng.randint(250, 360)), (2, self.rng.randint(100, 190)),
                            (3, self.rng.randint(10000, 10130)), (5, self.rng.randint(5, 180)),
                            (6, self.rng.randint(10, 250)), (7, self.rng.randint(170, 210))]
                flags = frame.UP_BOOT if i == 0 else 0
                data = bytes(fr.encode(c, flags, [(0, [(ch, v, 0) for ch, v in readings])]))
                t = self.t0 + self.phase[n] + i * self.interval_s
                out.append(SimFrame(t, n, c, data, self._heard(n), readings))
        out.sort(key=lambda f: f.t)
        return out

    def rx_meta(self, f: SimFrame, gw_index: int, rssi: float, snr: float) -> RxMeta:
        # copies reach different gateways a few ms apart
        return RxMeta(self.gateways[gw_index][0], f.t + 0.001 * gw_index, FREQS[f.node_id % len(FREQS)], SF, BW,
                      rssi, snr, "r0")


class EmulatedGateway:
    """A gateway in uplink mode without its radio: frames go into its own raw log (the
    gateway's RawLog, fsync on) and an UplinkPublisher sends the log to the broker."""

    def __init__(self, gateway_id: str, data_dir, host: str, port: int, **publisher_kw):
        self.gateway_id = gateway_id
        self.raw_log = RawLog(data_dir / gateway_id / "raw.log", fsync=publisher_kw.pop("fsync", True))
        self.publisher = UplinkPublisher(self.raw_log.path, gateway_id, host, port,
                                         client_id=f"sen-uplink-{gateway_id}", **publisher_kw)
        self.received = 0

    def receive(self, items):
        self.raw_log.append(items)
        self.received += len(items)

    def start(self):
        self.publisher.start()
        return self

    def caught_up(self) -> bool:
        return self.publisher.cursor.value >= self.raw_log.end

    def stop(self):
        self.publisher.stop()
        self.raw_log.close()
