"""Radio backends. Each delivers (frame bytes, RxMeta) to a callback from its own thread
or IRQ context and can transmit a downlink. `open_backend` builds one from config.

Backends are looked up in a registry. The gateway's own (serial, sx127x, semtech_udp) are
registered here; a layer above the gateway may add more with `register_backend` — the host
tools register "emulated" (the emulator's SX1276 on its radio medium), so the gateway never
imports the emulator.
"""
from sen.errors import SenError

# backend name -> factory(rc, gateway_id, on_frame, medium) -> Backend
_BACKENDS = {}

# Named here so config and errors can mention them, but supplied by a layer above.
HOSTED = {"emulated": ("needs an emulator's radio medium",
                       "use it from `sen demo`/`sen emulate`; with `sen gateway run` use sx127x or serial")}


def register_backend(name: str, factory) -> None:
    _BACKENDS[name] = factory


# The factories import their module when used: each pulls in its own driver stack
# (pyserial, pyLoRa/spidev, sockets), which a gateway without that radio never needs.
def _serial(rc, gateway_id, on_frame, medium):
    from sen.gateway.radio.serial_backend import SerialBackend  # lazy: its library only when used
    return SerialBackend(rc, gateway_id, on_frame)


def _sx127x(rc, gateway_id, on_frame, medium):
    from sen.gateway.radio.sx127x import Sx127xBackend  # lazy: its library only when used
    return Sx127xBackend(rc, gateway_id, on_frame)


def _semtech_udp(rc, gateway_id, on_frame, medium):
    from sen.gateway.radio.semtech_udp import SemtechUdpBackend  # lazy: its library only when used
    return SemtechUdpBackend(rc, gateway_id, on_frame)


register_backend("serial", _serial)
register_backend("sx127x", _sx127x)
register_backend("semtech_udp", _semtech_udp)


def open_backend(rc, gateway_id: str, on_frame, medium=None):
    factory = _BACKENDS.get(rc.backend)
    if rc.backend in HOSTED and (factory is None or medium is None):
        problem, fix = HOSTED[rc.backend]
        raise SenError(f"[[radio]] {rc.name}: backend '{rc.backend}' {problem}", fix)
    if factory is None:
        raise SenError(f"[[radio]] {rc.name}: backend '{rc.backend}' is unknown",
                       "use one of: sx127x, serial, emulated, semtech_udp")
    return factory(rc, gateway_id, on_frame, medium)
