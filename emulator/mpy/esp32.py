# `esp32` for the emulated board: NVS with commit semantics, ext0/ext1 deep-sleep wake.
# NVS writes stay pending in the board host until commit(); a reset or power cut drops
# them. Missing keys raise OSError(-4354) (ESP_ERR_NVS_NOT_FOUND) as on the ESP32 port.
from _board import call, pin_id

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
HEAP_DATA = 4
HEAP_EXEC = 1


class NVS:
    def __init__(self, namespace):
        call("nvs_open", ns=namespace)
        self._ns = namespace

    def set_i32(self, key, value):
        call("nvs_set", ns=self._ns, key=key, kind="i32", value=int(value))

    def get_i32(self, key):
        return call("nvs_get", ns=self._ns, key=key, kind="i32")

    def set_blob(self, key, value):
        call("nvs_set", ns=self._ns, key=key, kind="blob", value=bytes(value))

    def get_blob(self, key, buffer):
        r = call("nvs_get", ns=self._ns, key=key, kind="blob", size=len(buffer))
        buffer[0:len(r)] = r
        return len(r)

    def erase_key(self, key):
        call("nvs_erase", ns=self._ns, key=key)

    def commit(self):
        call("nvs_commit", ns=self._ns)


def wake_on_ext0(pin, level):
    call("wake_ext0", pin=pin_id(pin), level=1 if level else 0)


def wake_on_ext1(pins, level):
    call("wake_ext1", pins=[pin_id(p) for p in (pins or ())], level=1 if level else 0)


def wake_on_touch(wake):
    pass


def gpio_deep_sleep_hold(enable):
    call("gpio_hold", on=1 if enable else 0)


def raw_temperature():
    return 128
