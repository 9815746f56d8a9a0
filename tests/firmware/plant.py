# The physical truth behind the Rig (support.py): a FakeHardware whose outputs drive a laser diode,
# its heatsink and a fan, and whose inputs read them back, in the Rig's virtual time. The tests
# judge the firmware by this truth (tests/test_rhythms.py), not by the firmware's own counts.
#
# - Light: the diode's calibrated watts at the PWM set-point (times `light_factor`: an aged or an
#   overdriven diode) while the driver's enable input is high. A hardware gate (a PWM on the
#   enable line) starts HIGH when it is started (phase 0) and keeps its phase while it runs, so
#   the light of a stretch of time is its exact on-time. `emitted_j` integrates all of it.
# - Outputs take effect `actuate_delay_ms` after the tick's start (a tick that runs late): until
#   then the previous ones hold. actuate() and safe_off() return when (in ticks_ms).
# - Heat: the driver's electrical power (electrical_w_at_full_duty * duty while enabled) minus the
#   light, into two thermal nodes as in the virtual device (host_tools/vdevice/mpy/sim_plant.py):
#   junction -> heatsink -> ambient, through the fan's resistance or, with the fan dead
#   (`fan = False`), the much larger one without it; board["plant"] gives the figures.
# - The thermistor reads the heatsink through the firmware's own model (Thermistor.uv_at), so a
#   test sees the firmware's decisions, not a model error; `freeze_sensor()` makes every sample
#   one value from then on (a stuck ADC). With `reading_from_heatsink = False` the test sets the
#   reading itself (FakeHardware's thermistor_uv and spread_uv), as a heatsink of its own.
# - `enable_stuck`: the driver's enable input held high whatever is driven (a shorted
#   transistor): light at the set-point's peak whatever the gate, the sense pin high, no edges.
# - The sense pin reads the enable input's level at the tick's start; Inputs.enable_edges (where
#   the firmware has it) gets the rising edges since the previous sense.
# - `command`: a serial request (records.ARM, ...) passed to the next tick as Inputs.command.
# Runs on CPython and MicroPython alike (floats for the physics: a test tool, not firmware).
import math

from support import FakeHardware
from thermistor import Thermistor
from ticks import ticks_add, ticks_diff

_SPREAD_UV = 1000  # a live sensor's samples differ within a tick (the median is the value)


class Plant(FakeHardware):
    def __init__(self, board, ambient_c=25.0, heatsink_c=None):
        FakeHardware.__init__(self, board=board)
        plant = board["plant"]
        self.sensor = Thermistor(board["thermistor"])
        self.ambient_c = float(ambient_c)
        self.heatsink_c = float(ambient_c if heatsink_c is None else heatsink_c)
        self.junction_c = self.heatsink_c
        self.max_heatsink_c = self.heatsink_c
        self.sensed_c = self.heatsink_c  # the heatsink when the last tick read it
        self._c_junction = float(plant["junction_capacity_j_per_c"])
        self._r_junction = float(plant["junction_to_heatsink_c_per_w"])
        self._c_heatsink = float(plant["heatsink_capacity_j_per_c"])
        self._r_fan_on = float(plant["heatsink_to_ambient_c_per_w"])
        self._r_fan_off = float(plant["heatsink_to_ambient_fan_off_c_per_w"])
        self.electrical_full_w = float(plant["electrical_w_at_full_duty"])
        self.fan = True
        self.reading_from_heatsink = True
        self.frozen_uv = None  # a stuck ADC: every sample this value
        self.actuate_delay_ms = 0
        self.command = None
        self.emitted_j = 0.0
        self.gate_hz = 0
        self.time_ms = 0.0  # the plant's own clock (ms, never wraps)
        self._sensed_ms = 0.0  # the plant's clock at the last sense ...
        self._ticks_ms = None  # ... and the firmware's ticks_ms then
        self._driven = False  # the enable line driven high (steadily, or by the gate)
        self._gate = None  # (period ms, on ms, start ms) of the gate PWM on the enable line
        self._peak_w = 0.0  # light while the enable input is high, at the set-point
        self._electrical_w = 0.0  # the driver's power then
        self._edges = 0  # rising edges on the enable input since the last sense
        self._propagators = {}

    # -- time -------------------------------------------------------------------------------------

    def sync(self, now_ms):
        """Bring the plant to the firmware's `now_ms` (a tick's start)."""
        if self._ticks_ms is None:
            self._ticks_ms = now_ms
        t = self._sensed_ms + ticks_diff(now_ms, self._ticks_ms)
        self._advance(t)
        self._ticks_ms, self._sensed_ms = now_ms, t

    def _advance(self, t):
        dt = t - self.time_ms
        if dt <= 0:
            return
        on_ms = self._high_ms(self.time_ms, t)
        light_j = self._peak_w * on_ms / 1000
        self.emitted_j += light_j
        heat_w = max(self._electrical_w * on_ms / 1000 - light_j, 0.0) * 1000 / dt
        if self._gate is not None and not self.enable_stuck:
            period, _, start = self._gate
            self._edges += int((t - start) // period) - int((self.time_ms - start) // period)
        if self.reading_from_heatsink:  # (else nothing reads the heatsink)
            self._integrate(dt, heat_w)
        self.time_ms = t

    def _high_ms(self, t0, t1):
        """How long the driver's enable input is high between t0 and t1."""
        if self.enable_stuck or (self._driven and self._gate is None):
            return t1 - t0
        if self._gate is None:
            return 0.0
        period, on, start = self._gate

        def high_until(t):
            whole = (t - start) // period
            return whole * on + min(t - start - whole * period, on)

        return high_until(t1) - high_until(t0)

    def enable_high(self):
        """The enable input's level now."""
        if self.enable_stuck or (self._driven and self._gate is None):
            return True
        if self._gate is None:
            return False
        period, on, start = self._gate
        return (self.time_ms - start) % period < on

    def light_w(self):
        """The light now, as an average over the gate's period (what a photodiode amplifier
        that averages fast pulses sees)."""
        if self.enable_stuck or (self._driven and self._gate is None):
            return self._peak_w
        if self._gate is None:
            return 0.0
        return self._peak_w * self._gate[1] / self._gate[0]

    def lit(self):
        """Light is on now (or pulsing)."""
        return self.light_w() > 0.0

    # -- heat -------------------------------------------------------------------------------------

    def _integrate(self, dt_ms, heat_w):
        """Two nodes, dT/dt = A T + b with b constant over the step: exact for any step."""
        r_ambient = self._r_fan_on if self.fan else self._r_fan_off
        sink_ss = self.ambient_c + heat_w * r_ambient
        junction_ss = sink_ss + heat_w * self._r_junction
        key = (int(dt_ms * 1000 + 0.5), self.fan)
        m = self._propagators.get(key)
        if m is None:
            m = self._propagator(dt_ms / 1000, r_ambient)
            if len(self._propagators) >= 64:
                self._propagators = {}
            self._propagators[key] = m
        dj = self.junction_c - junction_ss
        dh = self.heatsink_c - sink_ss
        self.junction_c = junction_ss + m[0] * dj + m[1] * dh
        self.heatsink_c = sink_ss + m[2] * dj + m[3] * dh
        if self.heatsink_c > self.max_heatsink_c:
            self.max_heatsink_c = self.heatsink_c

    def _propagator(self, t, r_ambient):
        g = 1.0 / self._r_junction
        h = 1.0 / r_ambient
        a11, a12 = -g / self._c_junction, g / self._c_junction
        a21, a22 = g / self._c_heatsink, -(g + h) / self._c_heatsink
        mean = (a11 + a22) / 2
        spread = math.sqrt(((a11 - a22) / 2) ** 2 + a12 * a21)
        l1, l2 = mean + spread, mean - spread
        e1, e2 = math.exp(l1 * t), math.exp(l2 * t)
        d = l1 - l2
        return ((e1 * (a11 - l2) - e2 * (a11 - l1)) / d, (e1 - e2) * a12 / d,
                (e1 - e2) * a21 / d, (e1 * (a22 - l2) - e2 * (a22 - l1)) / d)

    def heat_w_at(self, duty_u16):
        """The most heat the diode makes at a set-point (its driver's power, no light out)."""
        return self.electrical_full_w * duty_u16 / 65535

    # -- the hardware module's interface ----------------------------------------------------------

    def sense(self, inp, now_ms):
        self.sync(now_ms)
        self.sensed_c = self.heatsink_c
        if self.reading_from_heatsink:
            self.thermistor_uv = int(self.sensor.uv_at(self.heatsink_c))
            self.spread_uv = _SPREAD_UV
        self.optical_w = self.light_w()
        FakeHardware.sense(self, inp, now_ms)
        if self.frozen_uv is not None:
            samples = inp.thermistor_samples
            for i in range(len(samples)):
                samples[i] = self.frozen_uv
        inp.enable_sensed = self.enable_high()
        if hasattr(inp, "enable_edges"):  # the firmware counts them (a hardware counter)
            inp.enable_edges = self._edges
        self._edges = 0
        inp.command, self.command = self.command, None

    def actuate(self, out):
        at = self._sensed_ms + self.actuate_delay_ms
        self._advance(at)
        self._apply(out.laser_enable, out.pwm_duty_u16, out.gate_hz, out.gate_duty_u16)
        self._record(out)
        return ticks_add(self._ticks_ms, self.actuate_delay_ms)

    def safe_off(self):
        at = self._sensed_ms + self.actuate_delay_ms
        self._advance(at)
        self._apply(False, 0, 0, 0)
        FakeHardware.safe_off(self)
        self.gate_hz = 0
        return ticks_add(self._ticks_ms, self.actuate_delay_ms)

    def _apply(self, enable, duty, gate_hz, gate_duty_u16):
        was_high = self.enable_high()
        if not enable:
            self._driven, self._gate = False, None
        elif not gate_hz:
            self._driven, self._gate = True, None
        elif self._gate is None or self.gate_hz != gate_hz:
            # hw.actuate starts a new gate PWM (at phase 0: the enable line goes high) when none
            # runs or its rate changes; a running one keeps its phase.
            period = 1000.0 / gate_hz
            self._driven, self._gate = True, (period, period * gate_duty_u16 / 65536,
                                              self.time_ms)
        if self.enable_high() and not was_high:
            self._edges += 1
        self._peak_w = self.calibration.watts(duty) * self.light_factor if duty else 0.0
        self._electrical_w = self.electrical_full_w * duty / 65535

    # -- plant faults (between ticks: they act from the plant's present time) ---------------------

    def set_light_factor(self, factor):
        self.light_factor = factor
        self._peak_w = self.calibration.watts(self.duty_u16) * factor if self.duty_u16 else 0.0

    def freeze_sensor(self):
        """The ADC returns one value from now on: the present reading."""
        self.frozen_uv = int(self.sensor.uv_at(self.heatsink_c))

    def stick_enable(self):
        self.enable_stuck = True


def break_dose_count(controller):
    """The dose_count_bug of the virtual device: this state machine never sees its dose reached,
    so only the supervisor's own budget can stop the light."""
    controller._dose_reached = lambda dosimeter: False
    controller.dose_count_broken = True
