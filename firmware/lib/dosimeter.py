# Counts the energy actually delivered: only while the hardware module really had emission on,
# at the calibrated power of the duty it applied. Integer millijoules, so that single-precision
# floats on the chip cannot drift the count over a long session (power in uW, ms -> nJ).
from ticks import ticks_diff


class Dosimeter:
    def __init__(self):
        self.clear()

    def clear(self):
        self.energy_mj = 0
        self.emitting_ms = 0
        self._rest_nj = 0
        self._on = False
        self._power_uw = 0
        self._since_ms = 0

    def account(self, now_ms):
        """Add the energy emitted since the last call (call once per tick, before deciding)."""
        if self._on:
            dt_ms = ticks_diff(now_ms, self._since_ms)
            nj = self._power_uw * dt_ms + self._rest_nj
            self.energy_mj += nj // 1000000
            self._rest_nj = nj % 1000000
            self.emitting_ms += dt_ms
        self._since_ms = now_ms

    def applied(self, emitting, power_uw, now_ms):
        """Tell the dosimeter the outputs just handed to the hardware module (after the veto)."""
        self._on = emitting
        self._power_uw = power_uw if emitting else 0
        self._since_ms = now_ms
