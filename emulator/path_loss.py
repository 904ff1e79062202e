"""Link budget for the radio medium: log-distance path loss, noise floor, LoRa demodulation limits.

    PL(d)   = PL(d0) + 10·n·log10(d / d0)          d0 = 1 m, d clamped to >= d0
    PL(d0)  = 20·log10(4·π·d0·f / c)                free-space loss at 1 m (31.7 dB at 921 MHz)
    RSSI    = P_tx + G_tx + G_rx − PL(d) − X_link   X_link: a fixed, seeded shadowing per link
    N       = −174 + 10·log10(BW) + NF              thermal noise in the channel (NF = 6 dB)
    SNR     = RSSI − N
    a frame is demodulated when SNR >= the SF's limit (SX1276 datasheet table 13:
    SF6 −5, SF7 −7.5, SF8 −10, SF9 −12.5, SF10 −15, SF11 −17.5, SF12 −20 dB)

Default exponent n = 3.0: the middle of the 2.7–3.5 range reported for urban links at
sub-GHz frequencies. All parameters come from the scenario's [radio] table.
"""
import math

from sen.adr import REQUIRED_SNR_DB

C_M_S = 299_792_458.0
SNR_LIMIT_DB = REQUIRED_SNR_DB  # one table: what ADR expects is what the emulated radios do


class LinkBudget:
    def __init__(self, exponent=3.0, noise_figure_db=6.0, shadowing_sigma_db=0.0, freq_hz=921.4e6):
        self.exponent = float(exponent)
        self.noise_figure_db = float(noise_figure_db)
        self.shadowing_sigma_db = float(shadowing_sigma_db)
        self.freq_hz = float(freq_hz)

    @staticmethod
    def free_space_db(distance_m, freq_hz):
        return 20.0 * math.log10(4.0 * math.pi * distance_m * freq_hz / C_M_S)

    def path_loss_db(self, distance_m, freq_hz=None):
        f = self.freq_hz if freq_hz is None else freq_hz
        d = max(float(distance_m), 1.0)
        return self.free_space_db(1.0, f) + 10.0 * self.exponent * math.log10(d)

    def noise_floor_dbm(self, bw_hz):
        return -174.0 + 10.0 * math.log10(bw_hz) + self.noise_figure_db

    @staticmethod
    def snr_limit_db(sf):
        return SNR_LIMIT_DB.get(int(sf), -20.0)

    def rssi_dbm(self, tx_dbm, distance_m, freq_hz=None, gains_db=0.0, shadowing_db=0.0):
        return tx_dbm + gains_db - self.path_loss_db(distance_m, freq_hz) - shadowing_db


def distance_m(a, b):
    """Distance between two (x_m, y_m) positions in metres."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def lat_lon_to_xy(lat, lon, lat0, lon0):
    """Local equirectangular projection around (lat0, lon0), metres; ample for a city."""
    r = 6_371_000.0
    x = math.radians(lon - lon0) * r * math.cos(math.radians(lat0))
    y = math.radians(lat - lat0) * r
    return x, y
