"""What the world says is wrong with one part of a station at one instant."""


class FaultState:
    __slots__ = ("detached", "nack_rate", "stuck", "spike_rate", "spike_magnitude")

    def __init__(self, detached=False, nack_rate=0.0, stuck=False, spike_rate=0.0, spike_magnitude=0.0):
        self.detached = detached
        self.nack_rate = nack_rate
        self.stuck = stuck
        self.spike_rate = spike_rate
        self.spike_magnitude = spike_magnitude

    def __bool__(self):
        return bool(self.detached or self.nack_rate or self.stuck or self.spike_rate)

    def __repr__(self):
        return "FaultState(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


NO_FAULT = FaultState()
