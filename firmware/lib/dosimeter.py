# Counts the energy actually delivered: only while the hardware module really had emission on,
# at the calibrated power of the duty it applied, up to the moment the outputs changed. Integer
# millijoules, so that single-precision floats on the chip cannot drift the count over a long
# session (power in uW, ms -> nJ).
#
# Under a hardware gate (fast pulses: a PWM on the enable line) the light is the peak power while
# the gate is high. The gate restarts high whenever it starts, so a run of emission shorter than
# whole periods holds more than the average's share of light: the count follows the gate's phase
# (whole periods, plus the part of the last one that was high) and never under-counts.
from ticks import ticks_diff

_NS_PER_S = 1000000000


class Dosimeter:
    def __init__(self):
        self.clear()

    def clear(self):
        self.energy_mj = 0
        self.emitting_ms = 0
        self._rest_nj = 0
        self._on = False
        self._light_uw = 0  # while the enable line is high: the power, or a gate's peak
        self._since_ms = None  # counted up to here (None: nothing applied yet)
        self._period_ns = 0  # the hardware gate's period (0: no gate, the light is steady) ...
        self._high_ns = 0  # ... the part of it that is high ...
        self._phase_ns = 0  # ... and where in its period the gate is now
        self._rest_ns = 0  # high time not yet counted (under a microsecond)

    def restore(self, energy_mj, emitting_ms):
        """Start from a session a reset interrupted (what is known of its dose), until the next
        arm clears it: nothing is emitting now."""
        self.clear()
        self.energy_mj, self.emitting_ms = energy_mj, emitting_ms

    def account(self, now_ms):
        """Add the energy emitted since the last call (before deciding, and again at the moment
        the outputs change)."""
        if self._since_ms is None:
            self._since_ms = now_ms
            return
        dt_ms = ticks_diff(now_ms, self._since_ms)
        if dt_ms <= 0:  # a moment already counted (the count never runs backwards)
            return
        if self._on:
            if self._period_ns:
                high_us = self._gated_us(dt_ms)
                light_uw = self._light_uw
                # mW x us = nJ, and the microwatts' rest rounded up: both stay small integers.
                nj = (light_uw // 1000) * high_us + ((light_uw % 1000) * high_us + 999) // 1000
            else:
                nj = self._light_uw * dt_ms
            nj += self._rest_nj
            self.energy_mj += nj // 1000000
            self._rest_nj = nj % 1000000
            self.emitting_ms += dt_ms
        self._since_ms = now_ms

    def applied(self, emitting, light_uw, now_ms, gate_hz=0, gate_duty_u16=0):
        """Tell the dosimeter the outputs just applied (after the veto), at `now_ms`: the light
        while the enable line is high, and the hardware gate pulsing it, if any."""
        if emitting and gate_hz:
            period_ns = _NS_PER_S // gate_hz
            if not self._on or period_ns != self._period_ns:  # the gate (re)starts, high
                self._phase_ns = 0
            self._period_ns = period_ns
            # Rounded up: the gate's duty resolution must not make the count short.
            self._high_ns = (period_ns * gate_duty_u16 + 65535) // 65536
        else:
            self._period_ns = 0
        self._on = emitting
        self._light_uw = light_uw if emitting else 0
        if self._since_ms is None or ticks_diff(now_ms, self._since_ms) > 0:
            self._since_ms = now_ms

    def _gated_us(self, dt_ms):
        """Microseconds the gate was high over the next dt_ms (its phase moves on)."""
        period, high, phase = self._period_ns, self._high_ns, self._phase_ns
        end = phase + dt_ms * 1000000
        periods = end // period
        into = end - periods * period
        high_ns = (periods * high + (into if into < high else high)
                   - (phase if phase < high else high) + self._rest_ns)
        self._phase_ns = into
        self._rest_ns = high_ns % 1000
        return high_ns // 1000
