# `time` for the emulated board, driven by the board host's virtual clock.
# ticks_* count from boot (they restart after deep sleep, as the ESP32's do) and wrap at
# 2**30 like MicroPython's. time()/localtime() use the ESP32 port's epoch, 2000-01-01 UTC,
# and follow RTC().datetime(); the RTC starts at the epoch on power-on.
# Sleeps block the firmware in virtual time: at --speed max a 15-minute sleep is instant.
from _board import call, heap

TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD // 2


def ticks_us():
    return call("ticks_us") & TICKS_MAX


def ticks_ms():
    return (call("ticks_us") // 1000) & TICKS_MAX


def ticks_cpu():
    return call("ticks_cpu") & TICKS_MAX


def ticks_add(ticks, delta):
    return (ticks + delta) & TICKS_MAX


def ticks_diff(ticks1, ticks2):
    return ((ticks1 - ticks2 + _HALF) & TICKS_MAX) - _HALF


def sleep_us(us):
    call("sleep", us=int(us), heap=heap())


def sleep_ms(ms):
    call("sleep", us=int(ms) * 1000, heap=heap())


def sleep(seconds):
    call("sleep", us=int(seconds * 1000000), heap=heap())


def time():
    return call("epoch_us") // 1000000


def time_ns():
    return call("epoch_us") * 1000


def _days_from_civil(y, m, d):
    # Howard Hinnant's algorithm; days since 2000-01-01.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 730425


def gmtime(secs=None):
    if secs is None:
        secs = time()
    secs = int(secs)
    days, rem = divmod(secs, 86400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    z = days + 730425
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    y += m <= 2
    wday = (days + 5) % 7  # 2000-01-01 was a Saturday; Monday = 0
    yday = days - _days_from_civil(y, 1, 1) + 1
    return (y, m, d, hh, mm, ss, wday, yday)


def localtime(secs=None):
    return gmtime(secs)


def mktime(t):
    return _days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5]
