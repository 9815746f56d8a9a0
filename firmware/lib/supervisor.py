# The second opinion. Each tick it recomputes, from the raw inputs alone, whether emission may be
# on, and vetoes the outputs if not. It never turns anything on, and it shares no state with the
# treatment state machine: a bug there cannot switch this check off. docs/hazards.md lists what
# each of its checks mitigates.
#
# Besides the instantaneous conditions it keeps an energy budget of its own: the light it let
# through, counted from its own evaluation of the calibration curve, against the prescribed dose.
# Three checks trip it (latched until a reset press): the budget spent (DOSE_BUDGET), light above
# the diode's maximum or light while the outputs were off (power monitor boards), and the enable
# line read back high while it was driven low (boards with a sense pin).
from array import array

import calibration
from dosimeter import Dosimeter
from records import ARM, RESET
from thermal import median
from thermistor import Thermistor

# Trip codes: latched faults the loop reports through the controller (docs/states.md).
DOSE_BUDGET = "DOSE_BUDGET"
LIGHT_OVER_LIMIT = "LIGHT_OVER_LIMIT"
UNCOMMANDED_EMISSION = "UNCOMMANDED_EMISSION"
ENABLE_STUCK = "ENABLE_STUCK"

_BUDGET_TOLERANCE_PERMILLE = 10  # the budget is the dose + 1 % ...
_BUDGET_TICKS = 2  # ... + two ticks at full power (a late tick may add its lateness)


class Supervisor:
    """`board` is a validated board dict, `treatment` a Treatment or None (then nothing may
    emit). Attributes for the report: `permitted` (this tick's verdict), `why` (the first
    reason it is withheld, a short text, or None), `trip` (a latched trip code or None),
    `locked` (the self-test's or integrity check's reason, or None: emission locked until a
    reboot)."""

    def __init__(self, board, treatment):
        therm = Thermistor(board["thermistor"])
        # Compare raw microvolts against the voltage of the shutdown temperature: no floats per
        # tick, and its own median of the samples, not the monitor's.
        self._limit_uv = int(therm.uv_at(board["thermal"]["shutdown_c"]))
        self._scratch = array("i", [0] * board["thermistor"]["samples"])
        self._hot_is_low = therm.ntc_at_bottom
        self._min_uv = therm.min_uv
        self._max_uv = therm.max_uv
        self._sense_fitted = "enable_sense_pin" in board["laser"]
        self._light_limits(board)
        self.set_treatment(board, treatment)
        self.dose = Dosimeter()  # its own count of the light it let through
        self._enabled_was = False
        self._arm_was = self._reset_was = True  # held at boot is not a press
        self.permitted = False
        self.why = "booting"
        self.trip = None
        self.locked = None
        self.calibration_only = False  # no valid settings: only a calibration point may emit

    def _light_limits(self, board):
        monitor = board.get("power_monitor")
        self._light_max_uv = self._dark_max_uv = None
        if monitor is None:
            return
        tolerance = monitor["tolerance_pct"] / 100
        max_w = board["diode"]["max_power_w"] * (1 + tolerance) + monitor["floor_w"]
        self._light_max_uv = _uv_for(monitor["calibration"], max_w)
        self._dark_max_uv = _uv_for(monitor["calibration"], 2 * monitor["floor_w"])

    def set_treatment(self, board, treatment):
        """The duties the treatment may command and the light each gives, by the supervisor's
        own reading of the calibration (an average over the hardware gate where one pulses)."""
        self._duties = array("i")
        self._uw = array("i")
        self._budget_mj = 0
        self._calibrating = treatment is not None and treatment.is_calibration
        if treatment is None:
            return
        cal = calibration.for_board(board)
        fraction = 1.0
        if treatment.pulse_hz and not treatment.gate_period_ms:
            fraction = treatment.gate_duty_u16 / 65536
        seen = []  # (MicroPython's arrays have no `in`)
        for duty in treatment.duty_steps:
            if duty and duty not in seen:
                seen.append(duty)
                self._duties.append(duty)
                self._uw.append(int(cal.watts(duty) * fraction * 1000000 + 0.5))
        tick_mj = board["diode"]["max_power_w"] * board["loop_ms"] * _BUDGET_TICKS
        self._budget_mj = (treatment.target_mj * (1000 + _BUDGET_TOLERANCE_PERMILLE) // 1000
                           + int(tick_mj + 0.5))

    def lock(self, reason):
        """Lock emission until the next boot (a failed self-test or integrity check)."""
        if self.locked is None:
            self.locked = reason

    def veto(self, inp, out, fault_latched):
        """Clear the emission outputs unless every condition holds; return the verdict.
        `fault_latched`: the state machine is in FAULT (it must not be asking for light)."""
        now = inp.t_ms
        self.dose.account(now)
        self._watch(inp)
        why = self._withheld(inp, out, fault_latched)
        uw = 0
        if why is None and out.laser_enable:
            uw = self._power_uw(out.pwm_duty_u16)
            if uw < 0:
                why = "duty not the treatment's"
            elif self.dose.energy_mj >= self._budget_mj:
                self.trip = DOSE_BUDGET
                why = DOSE_BUDGET
        ok = why is None
        if not ok:
            out.laser_enable = False
            out.pwm_duty_u16 = 0
            out.gate_hz = 0
            uw = 0
        self.dose.applied(out.laser_enable, uw, now)
        self._enabled_was = out.laser_enable
        self.permitted = ok
        self.why = why
        return ok

    def _watch(self, inp):
        """The arm and reset presses, and the trips that need the last tick's outputs."""
        if (inp.arm_pressed and not self._arm_was) or inp.command == ARM:
            self.dose.clear()  # a new session: a new budget (docs/hazards.md H13)
        if (inp.reset_pressed and not self._reset_was) or inp.command == RESET:
            self.trip = None  # re-trips at once if its cause persists
        self._arm_was, self._reset_was = inp.arm_pressed, inp.reset_pressed
        if self._light_max_uv is not None:
            if inp.monitor_uv > self._light_max_uv:
                self.trip = LIGHT_OVER_LIMIT
            elif not self._enabled_was and inp.monitor_uv > self._dark_max_uv:
                self.trip = UNCOMMANDED_EMISSION
        if self._sense_fitted and not self._enabled_was and inp.enable_sensed:
            self.trip = ENABLE_STUCK

    def _withheld(self, inp, out, fault_latched):
        """The first reason emission is not permitted now, or None."""
        if self.locked is not None:
            return "locked"
        if self.trip is not None:
            return self.trip
        if self.calibration_only and not self._calibrating:
            return "not calibrated"
        if fault_latched:
            return "fault latched"
        if not inp.key_on:
            return "key off"
        if not inp.interlock_closed:
            return "interlock open"
        if inp.estop_pressed:
            return "e-stop"
        if not inp.footswitch_no_closed or inp.footswitch_nc_closed:
            return "footswitch up"
        uv = median(inp.thermistor_samples, self._scratch)
        if not self._min_uv <= uv <= self._max_uv:
            return "sensor invalid"
        if (uv <= self._limit_uv) if self._hot_is_low else (uv >= self._limit_uv):
            return "too hot"
        if not out.laser_enable and out.pwm_duty_u16:
            return "duty with the gate shut"
        return None

    def _power_uw(self, duty):
        """The light at `duty` by the supervisor's own calibration, or -1 if the treatment never
        commands that duty (the state machine asking for a power it was not given)."""
        duties = self._duties
        for i in range(len(duties)):
            if duties[i] == duty:
                return self._uw[i]
        return -1


def _uv_for(points, watts):
    """The photodiode reading for `watts`: the calibration [[uv, watts], ...] inverted, beyond
    its last point along the last segment."""
    for i in range(1, len(points)):
        (uv0, w0), (uv1, w1) = points[i - 1], points[i]
        if watts <= w1 or i == len(points) - 1:
            return int(uv0 + (uv1 - uv0) * (watts - w0) / (w1 - w0))
    return points[-1][0]
