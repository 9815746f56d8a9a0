# A treatment as prescribed: power, fluence and area, checked against the board it will run on.
# Everything the loop needs later (the duty, the energy target) is computed here, once.
import math
from array import array

import calibration as calibration_module
from fields import is_number
from thermal import DERATE_STEPS

_MIN_EMISSION_S = 1.0  # shorter than this is not a treatment, and the dose stop could not be exact
_POWER_TOLERANCE = 0.01  # the calibrated power of the duty set must be this close to the prescribed
_HEAT_MARGIN = 1.1  # the heat estimate is taken 10 % high: a bound for the runaway check
_FIELDS = ("power_w", "dose_j_cm2", "area_cm2", "mode", "pulse_hz", "duty_pct")
# Below this rate the loop gates the enable line itself, in whole ticks (so every press starts and
# counts whole pulses); from it upwards a hardware PWM does, a period being at most one 10 ms tick.
GATE_HARDWARE_MIN_HZ = 100


class Treatment:
    """`spec`: power_w (the AVERAGE optical power), dose_j_cm2, area_cm2, and optionally mode
    "cw" (default) or "pulsed" with pulse_hz (1..20000) and duty_pct (1..99).

    Pulses are made by gating the laser's enable line while the PWM set-point holds the peak
    power (average / duty): from GATE_HARDWARE_MIN_HZ by a hardware PWM on the enable pin,
    at lower rates by the loop itself, switching the enable line on tick boundaries."""

    is_calibration = False  # see CalibrationPoint

    __slots__ = ("power_w", "dose_j_cm2", "area_cm2", "target_j", "mode", "pulse_hz",
                 "duty_pct", "peak_w", "duty_u16", "gate_duty_u16", "gate_period_ms",
                 "gate_on_ms", "power_uw", "target_mj", "duty_steps", "power_uw_steps",
                 "peak_uw_steps", "heat_uw_steps")

    def __init__(self, spec, calibration, max_energy_j, electrical_w_at_full_duty=0.0,
                 loop_ms=10, min_pulse_us=10):
        if not isinstance(spec, dict):
            raise ValueError("treatment: must be an object with power_w, dose_j_cm2, area_cm2")
        for key in spec:
            if key not in _FIELDS:
                raise ValueError("treatment.%s: unknown field (known: %s)"
                                 % (key, ", ".join(_FIELDS)))
        self.power_w = _positive(spec, "power_w")
        self.dose_j_cm2 = _positive(spec, "dose_j_cm2")
        self.area_cm2 = _positive(spec, "area_cm2")
        self.target_j = self.dose_j_cm2 * self.area_cm2
        if self.target_j > max_energy_j:
            raise ValueError("treatment: %.1f J exceeds this board's limit of %.1f J"
                             % (self.target_j, max_energy_j))
        self._mode(spec, loop_ms, min_pulse_us)
        fraction = self._gate_fraction()
        self.peak_w = self.power_w / fraction
        try:
            self.duty_u16 = calibration.duty(self.peak_w)
        except ValueError as e:
            what = "peak power (average / duty) " if self.mode == "pulsed" else ""
            raise ValueError("treatment.power_w: %s%s" % (what, e))
        # The energy is counted from the power of the duty actually commanded, not the power asked.
        actual_w = calibration.watts(self.duty_u16) * fraction
        if abs(actual_w - self.power_w) > _POWER_TOLERANCE * self.power_w:
            raise ValueError("treatment.power_w: this board's PWM cannot set %.4f W within 1 %% "
                             "(the nearest is %.4f W)" % (self.power_w, actual_w))
        self.power_uw = int(actual_w * 1000000 + 0.5)  # the average, as delivered
        if self.target_j < self.power_w * _MIN_EMISSION_S:
            raise ValueError("treatment: %.3f J at %.3f W is %.3f s of emission, under the "
                             "minimum of %g s" % (self.target_j, self.power_w,
                                                  self.target_j / self.power_w, _MIN_EMISSION_S))
        self.target_mj = int(self.target_j * 1000 + 0.5)
        # Power and heat per derating step count while the enable output is on: the average
        # under a hardware gate, the peak under the loop's own gate (it switches them per tick).
        # The dosimeters count a hardware gate's light from its peak and its phase.
        counted = 1.0 if self.gate_period_ms else fraction
        self._derating_steps(calibration, electrical_w_at_full_duty, counted, fraction)

    def _mode(self, spec, loop_ms, min_pulse_us):
        self.mode = spec.get("mode", "cw")
        self.pulse_hz = 0
        self.duty_pct = 100.0
        self.gate_duty_u16 = 65535
        self.gate_period_ms = self.gate_on_ms = 0
        if self.mode == "cw":
            for key in ("pulse_hz", "duty_pct"):
                if key in spec:
                    raise ValueError("treatment.%s: only for \"mode\": \"pulsed\"" % key)
            return
        if self.mode != "pulsed":
            raise ValueError('treatment.mode: must be "cw" or "pulsed", got %r' % (self.mode,))
        hz = _within(spec, "pulse_hz", 1, 20000)
        if hz != int(hz):  # the chip's PWM takes whole hertz
            raise ValueError("treatment.pulse_hz: must be a whole number of Hz, got %g" % hz)
        self.pulse_hz = int(hz)
        self.duty_pct = _within(spec, "duty_pct", 1, 99)
        on_us = self.duty_pct / 100 * 1000000 / self.pulse_hz
        if on_us < min_pulse_us:
            raise ValueError("treatment.duty_pct: %g %% at %d Hz is a %.1f us pulse, shorter than "
                             "the %g us this board's driver needs to reach its current"
                             % (self.duty_pct, self.pulse_hz, on_us, min_pulse_us))
        if self.pulse_hz >= GATE_HARDWARE_MIN_HZ:
            # A hardware PWM on the enable pin: its duty aligned to that frequency's resolution.
            step = 1 << (16 - calibration_module.pwm_resolution_bits(self.pulse_hz))
            self.gate_duty_u16 = int(self.duty_pct / 100 * 65536 / step + 0.5) * step
            return
        # The loop gates the enable line itself, on tick boundaries: period and on-time are
        # whole ticks, and the pulses are refused if that would change the duty by more than 1 %.
        period = 1000.0 / self.pulse_hz
        ticks = int(period / loop_ms + 0.5)
        on_ticks = int(ticks * self.duty_pct / 100 + 0.5)
        if ticks * loop_ms != period or on_ticks < 1 or on_ticks >= ticks or \
                abs(on_ticks / ticks * 100 - self.duty_pct) > _POWER_TOLERANCE * self.duty_pct:
            raise ValueError("treatment.pulse_hz: below %d Hz the loop makes the pulses in "
                             "whole %d ms ticks; %d Hz at %g %% does not fit them (try a "
                             "period and an on-time that are multiples of %d ms)"
                             % (GATE_HARDWARE_MIN_HZ, loop_ms, self.pulse_hz, self.duty_pct,
                                loop_ms))
        self.gate_period_ms = ticks * loop_ms
        self.gate_on_ms = on_ticks * loop_ms

    def _gate_fraction(self):
        if self.mode == "cw":
            return 1.0
        if self.gate_period_ms:
            return self.gate_on_ms / self.gate_period_ms
        return self.gate_duty_u16 / 65536

    def _derating_steps(self, calibration, electrical_w_at_full_duty, counted, average):
        # Thermal derating reduces the power in DERATE_STEPS steps: their duties, calibrated
        # (average) powers and heat bounds are computed here, once, so that the tick only indexes
        # them. A step below the lowest measured lasing point is off: between there and the
        # threshold the calibration is a straight line across a kink, not a measurement.
        self.duty_steps = array("i", [0] * (DERATE_STEPS + 1))
        self.power_uw_steps = array("i", [0] * (DERATE_STEPS + 1))
        self.peak_uw_steps = array("i", [0] * (DERATE_STEPS + 1))
        self.heat_uw_steps = array("i", [0] * (DERATE_STEPS + 1))
        lowest_w = calibration.lowest_lasing_w()
        for step in range(1, DERATE_STEPS + 1):
            peak_w = self.peak_w * step / DERATE_STEPS
            if step == DERATE_STEPS:
                duty = self.duty_u16
            elif peak_w >= lowest_w:
                duty = calibration.duty(peak_w)
            else:
                continue
            optical_w = calibration.watts(duty)
            self.duty_steps[step] = duty
            self.power_uw_steps[step] = int(optical_w * counted * 1000000 + 0.5)
            self.peak_uw_steps[step] = int(optical_w * 1000000 + 0.5)
            # The heat bound is the average over the pulses, on-ticks and off-ticks alike.
            self.heat_uw_steps[step] = _heat_uw(electrical_w_at_full_duty, duty, optical_w,
                                                average)


class CalibrationPoint:
    """A service technician's calibration point: `duty_u16` held for `time_s` seconds of
    emission while a power meter reads the light. It is armed and run like a treatment (key,
    interlock, the emission warning, the footswitch, the supervisor, the thermal checks) with
    the interface the loop uses. Its power is the estimate of the curve in use (which the point
    is there to correct); counting that power for `time_s` makes the dose stop a timer.
    No derating: a heatsink too warm for the full duty stops the light instead. No upper
    limit but the PWM's: the curve a point corrects may read high or low, the board's design
    keeps full duty within the diode's rating, and on a board with a power monitor the
    supervisor's absolute light limit trips above max_power_w + its tolerance."""

    is_calibration = True
    mode = "cw"
    pulse_hz = 0
    duty_pct = 100.0
    gate_duty_u16 = 65535
    gate_period_ms = gate_on_ms = 0
    dose_j_cm2 = area_cm2 = None

    def __init__(self, board, duty_u16, time_s):
        cal = calibration_module.for_board(board)
        duty = duty_u16 // cal.step * cal.step
        watts = cal.watts(duty)
        if watts <= 0:
            raise ValueError("duty %d is at or below the lasing threshold of the curve in use "
                             "(no light to measure)" % duty_u16)
        self.duty_u16 = duty
        self.time_s = time_s
        self.power_w = self.peak_w = watts
        self.power_uw = int(watts * 1000000 + 0.5)
        self.target_mj = self.power_uw * time_s // 1000
        self.target_j = self.target_mj / 1000
        top = DERATE_STEPS
        self.duty_steps = array("i", [0] * (top + 1))
        self.power_uw_steps = array("i", [0] * (top + 1))
        self.heat_uw_steps = array("i", [0] * (top + 1))
        self.duty_steps[top] = duty
        self.power_uw_steps[top] = self.power_uw
        self.peak_uw_steps = self.power_uw_steps  # CW: the light while on is the power
        self.heat_uw_steps[top] = _heat_uw(board["diode"]["electrical_w_at_full_duty"], duty,
                                           watts, 1.0)


def _heat_uw(electrical_w_at_full_duty, duty, optical_w, average):
    """The diode's heat at `duty` (electrical in, light out), 10 % high: the runaway check's
    bound. `average`: the fraction of the time the light is on."""
    electrical_w = electrical_w_at_full_duty * duty / 65535
    return int(max(electrical_w - optical_w, 0.0) * average * _HEAT_MARGIN * 1000000 + 0.5)


def for_board(spec, board):
    """The treatment `spec` on a validated board; ValueError naming the field if it cannot run."""
    return Treatment(spec, calibration_module.for_board(board), board["limits"]["max_energy_j"],
                     board["diode"]["electrical_w_at_full_duty"], board["loop_ms"],
                     board["laser"]["min_pulse_us"])


def _within(spec, key, low, high):
    value = _positive(spec, key)
    if not low <= value <= high:
        raise ValueError("treatment.%s: must be within %g..%g, got %g" % (key, low, high, value))
    return value


def _positive(spec, key):
    value = spec.get(key)
    if not is_number(value):
        raise ValueError("treatment.%s: must be a number, got %r" % (key, value))
    if not (math.isfinite(value) and value > 0):
        raise ValueError("treatment.%s: must be finite and > 0, got %r" % (key, value))
    return float(value)
