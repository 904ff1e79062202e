"""Radio backends. Each delivers (frame bytes, RxMeta) to a callback from its own thread
or IRQ context and can transmit a downlink. `open_backend` builds one from config."""
from sen.errors import SenError


def open_backend(rc, gateway_id: str, on_frame, medium=None):
    # lazy imports below: each backend's hardware library (pyserial, spidev, the emulator)
    # loads only when a radio uses it, and may be missing where it is not
    if rc.backend == "serial":
        from sen.gateway.radio.serial_backend import SerialBackend  # lazy: see above
        return SerialBackend(rc, gateway_id, on_frame)
    if rc.backend == "sx127x":
        from sen.gateway.radio.sx127x import Sx127xBackend  # lazy: see above
        return Sx127xBackend(rc, gateway_id, on_frame)
    if rc.backend == "emulated":
        if medium is None:
            raise SenError(f"[[radio]] {rc.name}: backend 'emulated' needs an emulator's radio medium",
                           "use it from `sen demo`/`sen emulate`; with `sen gateway run` use sx127x or serial")
        from sen.gateway.radio.emulated import EmulatedBackend  # lazy: see above
        return EmulatedBackend(rc, gateway_id, on_frame, medium)
    if rc.backend == "semtech_udp":
        from sen.gateway.radio.semtech_udp import SemtechUdpBackend  # lazy: see above
        return SemtechUdpBackend(rc, gateway_id, on_frame)
    raise SenError(f"[[radio]] {rc.name}: backend '{rc.backend}' is unknown",
                   "use one of: sx127x, serial, emulated, semtech_udp")
