# The second opinion. Each tick it recomputes, from the raw inputs alone, whether emission may be
# on, and vetoes the outputs if not. It never turns anything on, and it shares no state with the
# treatment state machine: a bug there cannot switch this check off. docs/hazards.md lists what
# each of its checks mitigates.
#
# Besides the instantaneous conditions it keeps an energy budget of its own: the light it let
# through, counted from its own evaluation of the calibration curve, against the prescribed dose.
# A new budget begins only where a new session can: an arm press seen with the light off, and
# the light off from then for at least the emission delay (READY's warning lasts that long; an
# arm pressed during a pause, with the pedal pressed again sooner, starts nothing: the light it
# precedes is the old session's). No button restarts it while light flows: the arm that the
# state machine ignores during emission must not re-arm this second channel.
# Four checks trip it (latched until a reset press): the budget spent (DOSE_BUDGET), light above
# the diode's maximum or light while the outputs were off (power monitor boards), the enable
# line stuck high (boards with a sense pin): read back high while driven low, or high with no
# rising edge while a hardware gate was pulsing it; and, as a backstop to the thermal monitor's
# own check, a thermistor frozen on one raw value through a second more of emission than the
# monitor allows (a frozen reading would blind its temperature check too).
from array import array

import calibration
from dosimeter import Dosimeter
from micropython import const
from records import ARM, RESET
from thermal import median
from thermistor import shared
from ticks import ticks_diff

# Trip codes: latched faults the loop reports through the controller (docs/states.md).
DOSE_BUDGET = "DOSE_BUDGET"
LIGHT_OVER_LIMIT = "LIGHT_OVER_LIMIT"
UNCOMMANDED_EMISSION = "UNCOMMANDED_EMISSION"
ENABLE_STUCK = "ENABLE_STUCK"
THERMISTOR_STUCK = "THERMISTOR_STUCK"  # thermal.py's code: the same fault, seen on its own

_BUDGET_TOLERANCE_PERMILLE = 10  # the budget is the dose + 1 % ...
_BUDGET_TICKS = 2  # ... + two ticks at full power (a late tick may add its lateness)
_GATED_OUT = const(2)  # what the last tick applied: a hardware gate pulsing the enable line


class Supervisor:
    """`board` is a validated board dict, `treatment` a Treatment or None (then nothing may
    emit). Attributes for the report: `permitted` (this tick's verdict), `why` (the first
    reason it is withheld, a short text, or None), `trip` (a latched trip code or None),
    `locked` (the self-test's or integrity check's reason, or None: emission locked until a
    reboot)."""

    def __init__(self, board, treatment):
        # The board's one Thermistor (the monitor's too), asked here for four numbers and kept
        # no further: each tick works on copies of them, the raw samples and its own median,
        # never on the sensor's grid or the monitor's temperature. Compare raw microvolts against
        # the voltage of the shutdown temperature: no floats per tick.
        therm = shared(board["thermistor"])
        self._limit_uv = int(therm.uv_at(board["thermal"]["shutdown_c"]))
        self._scratch = array("i", [0] * board["thermistor"]["samples"])
        self._hot_is_low = therm.ntc_at_bottom
        self._min_uv = therm.min_uv
        self._max_uv = therm.max_uv
        self._sense_fitted = "enable_sense_pin" in board["laser"]
        self._frozen_limit_ms = int(board["thermal"]["stuck_s"] * 1000) + 1000
        self._frozen_uv = -1  # the raw value every thermistor sample has had since ...
        self._frozen_ms = 0  # ... for this much of the light it let through
        self._emission_delay_ms = board["timing"]["emission_delay_ms"]
        self._light_limits(board)
        self.set_treatment(board, treatment)
        self.dose = Dosimeter()  # its own count of the light it let through
        self._enabled_was = False  # False, True, or _GATED_OUT: what the last tick applied
        self._light_uw = 0  # the light it let through this tick while the enable line is high
        self._dark_since_ms = None  # the light has been off since (None: it is on)
        self._armed_ms = None  # the last arm press seen since the light went off (None: none)
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
        self._uw = array("i")  # the light at each duty while the enable line is high
        self._budget_mj = 0
        self._calibrating = treatment is not None and treatment.is_calibration
        if treatment is None:
            return
        cal = calibration.for_board(board)
        seen = []  # (MicroPython's arrays have no `in`)
        for duty in treatment.duty_steps:
            if duty and duty not in seen:
                seen.append(duty)
                self._duties.append(duty)
                self._uw.append(int(cal.watts(duty) * 1000000 + 0.5))
        tick_mj = board["diode"]["max_power_w"] * board["loop_ms"] * _BUDGET_TICKS
        self._budget_mj = (treatment.target_mj * (1000 + _BUDGET_TOLERANCE_PERMILLE) // 1000
                           + int(tick_mj + 0.5))

    def lock(self, reason):
        """Lock emission until the next boot (a failed self-test or integrity check)."""
        if self.locked is None:
            self.locked = reason

    def veto(self, inp, out, fault_latched):
        """Clear the emission outputs unless every condition holds; return the verdict.
        `fault_latched`: the state machine is in FAULT (it must not be asking for light).
        Then call actuated() with the moment the outputs took effect."""
        now = inp.t_ms
        self._account(now)
        self._watch(inp)
        why = self._withheld(inp, out, fault_latched)
        uw = 0
        if why is None and out.laser_enable:
            uw = self._power_uw(out.pwm_duty_u16)
            if uw < 0:
                why = "duty not the treatment's"
            else:
                self._new_session(now)
                if self.dose.energy_mj >= self._budget_mj:
                    self.trip = DOSE_BUDGET
                    why = DOSE_BUDGET
        ok = why is None
        if not ok:
            out.laser_enable = False
            out.pwm_duty_u16 = 0
            out.gate_hz = 0
            uw = 0
        self._light_uw = uw
        if out.laser_enable:
            self._dark_since_ms = None
            self._armed_ms = None
        elif self._dark_since_ms is None:
            self._dark_since_ms = now
        self._enabled_was = _GATED_OUT if out.laser_enable and out.gate_hz else out.laser_enable
        self.permitted = ok
        self.why = why
        return ok

    def actuated(self, out, at_ms):
        """The outputs took effect at `at_ms` (after a slow tick, later than its start): the
        light so far is counted up to then, and the new outputs' light from then on."""
        self._account(at_ms)
        self.dose.applied(out.laser_enable, self._light_uw if out.laser_enable else 0, at_ms,
                          out.gate_hz, out.gate_duty_u16)

    def _account(self, now_ms):
        """Its own count of the light up to `now_ms`, and of the emission time a frozen
        thermistor reading has lasted."""
        before_ms = self.dose.emitting_ms
        self.dose.account(now_ms)
        if self._frozen_ms < self._frozen_limit_ms:
            self._frozen_ms += self.dose.emitting_ms - before_ms

    def _new_session(self, now):
        """Light is about to flow: a new budget if a new session can have begun since the last
        light (an arm press in the dark, at least the emission delay ago)."""
        if self._armed_ms is not None and \
                ticks_diff(now, self._armed_ms) >= self._emission_delay_ms:
            self.dose.clear()  # docs/hazards.md H12

    def _watch(self, inp):
        """The arm and reset presses, and the trips that need the last tick's outputs."""
        if ((inp.arm_pressed and not self._arm_was) or inp.command == ARM) and \
                self._dark_since_ms is not None:
            self._armed_ms = inp.t_ms  # the last one: the warning runs from it
        if (inp.reset_pressed and not self._reset_was) or inp.command == RESET:
            self.trip = None  # re-trips at once if its cause persists
        self._arm_was, self._reset_was = inp.arm_pressed, inp.reset_pressed
        samples = inp.thermistor_samples
        for i in range(len(samples)):
            if samples[i] != self._frozen_uv:  # alive: no pause restarts this, only a change
                self._frozen_uv = samples[i]
                self._frozen_ms = 0
        if self._frozen_ms >= self._frozen_limit_ms:
            self.trip = THERMISTOR_STUCK
        if self._light_max_uv is not None:
            if inp.monitor_uv > self._light_max_uv:
                self.trip = LIGHT_OVER_LIMIT
            elif not self._enabled_was and inp.monitor_uv > self._dark_max_uv:
                self.trip = UNCOMMANDED_EMISSION
        # The enable line high at the driver while driven low; or high with no rising edge in a
        # whole tick while a gate pulsed it (at >= 100 Hz every tick holds one).
        was = self._enabled_was
        if self._sense_fitted and inp.enable_sensed and \
                (not was or (was == _GATED_OUT and inp.enable_edges == 0)):
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
