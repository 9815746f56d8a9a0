# The treatment state machine: pure logic from one tick's Inputs to that tick's Outputs.
# It never touches hardware or reads the clock; the time comes in with the inputs.
#
#   STANDBY --arm--> READY --(delay over, footswitch seen released, then pressed)--> EMITTING
#   EMITTING --release--> PAUSED --press--> EMITTING        EMITTING --dose reached--> COMPLETE
#   COMPLETE --arm or reset (acknowledge)--> STANDBY        READY/PAUSED --arm--> STANDBY
#   key off or interlock open in READY/EMITTING/PAUSED --> STANDBY
#   any state --fault--> FAULT (latched) --reset, once the cause is gone--> STANDBY
from power_monitor import PowerMonitor
from thermal import ThermalMonitor
from thermistor import OK
from ticks import ticks_add, ticks_diff

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


BOOT = const(0)  # reserved for the boot self-test (issue 6); the controller starts in STANDBY
STANDBY = const(1)
READY = const(2)
EMITTING = const(3)
PAUSED = const(4)
COMPLETE = const(5)
FAULT = const(6)
STATE_NAMES = ("BOOT", "STANDBY", "READY", "EMITTING", "PAUSED", "COMPLETE", "FAULT")

# Fault codes (strings are interned constants: reporting one allocates nothing). The thermal
# ones (OVER_TEMP, THERMISTOR_*, THERMAL_*) are thermal.py's.
FOOTSWITCH_FAULT = "FOOTSWITCH_FAULT"
ESTOP = "ESTOP"
SOFTWARE = "SOFTWARE"

# Buzzer patterns: (period ms, on ms). Distinct so an operator can tell them apart by ear.
_WARNING_TONE = (400, 200)
_EMISSION_TONE = (1000, 100)
_ALARM_TONE = (500, 350)


class Controller:
    """`board` is a validated board dict; `treatment` a Treatment or None (nothing selected)."""

    def __init__(self, board, treatment, now_ms):
        self.thermal = ThermalMonitor(board, now_ms)
        monitor = board.get("power_monitor")
        self.power_monitor = PowerMonitor(monitor, board["loop_ms"]) if monitor else None
        self.power_uw = 0  # the calibrated power commanded this tick (after derating)
        self._heat_uw = 0  # the diode's heat bound at that power (for the runaway check)
        timing = board["timing"]
        self.emission_delay_ms = timing["emission_delay_ms"]
        self.mismatch_ms = timing["footswitch_mismatch_ms"]
        self.half_tick_ms = board["loop_ms"] // 2 or 1
        self.treatment = treatment
        self.state = STANDBY
        self.entered_ms = now_ms
        self.fault_code = None
        self.refusal = None  # why the last arm request was refused, for the operator
        self.refusals = 0  # counts refused arm requests, so that each one is reported
        self.footswitch_pressed = False
        self.footswitch_released = False
        self._mismatch_since_ms = None
        self._seen_released = False
        self._arm_was = True  # a button held at boot is not a press
        self._reset_was = True

    # -- readings ------------------------------------------------------------------------------

    @property
    def temp_c(self):
        """The heatsink temperature of the last reading, or None while the sensor is faulty."""
        thermal = self.thermal
        return thermal.temp_mc / 1000 if thermal.status == OK else None

    def _read_footswitch(self, inp):
        no, nc = inp.footswitch_no_closed, inp.footswitch_nc_closed
        self.footswitch_pressed = no and not nc
        self.footswitch_released = nc and not no
        if no == nc:  # contacts disagree: broken wire or stuck contact
            since = self._mismatch_since_ms
            if since is None:
                self._mismatch_since_ms = inp.t_ms
            elif ticks_diff(inp.t_ms, since) > self.mismatch_ms:
                # Keep the age bounded: an unbounded one would wrap after 2**29 ms (6.2 days)
                # and clear the fault while the wire is still broken.
                self._mismatch_since_ms = ticks_add(inp.t_ms, -self.mismatch_ms)
        else:
            self._mismatch_since_ms = None

    def _fault_cause(self, inp, sensed_fault):
        """The active fault cause, or None."""
        if inp.estop_pressed:
            return ESTOP
        if sensed_fault is not None:
            return sensed_fault
        since = self._mismatch_since_ms
        if since is not None and ticks_diff(inp.t_ms, since) >= self.mismatch_ms:
            return FOOTSWITCH_FAULT
        return None

    # -- the step ------------------------------------------------------------------------------

    def step(self, inp, dosimeter, out):
        """Advance one tick: read `inp`, use `dosimeter`'s count, and fill `out`."""
        now = inp.t_ms
        self._read_footswitch(inp)
        # Both monitors judge the tick that just ended, with the power commanded for it.
        sensed_fault = self.thermal.update(inp.thermistor_samples, now, self._heat_uw)
        if self.power_monitor is not None:
            deviation = self.power_monitor.update(inp.monitor_uv, self.power_uw,
                                                  self.state == EMITTING)
            sensed_fault = sensed_fault or deviation
        arm = inp.arm_pressed and not self._arm_was
        reset = inp.reset_pressed and not self._reset_was
        self._arm_was = inp.arm_pressed
        self._reset_was = inp.reset_pressed
        state = self.state

        if state == FAULT:
            # Reset clears the latch only once every cause is gone; the thermal history
            # (jumps, rates, runaway references) starts again from here.
            if reset and self.thermal.cause_gone() and self._fault_cause(inp, None) is None:
                self.fault_code = None
                self.thermal.restart(now)
                self._enter(STANDBY, now)
        else:
            cause = self._fault_cause(inp, sensed_fault)
            if cause is not None:
                self.fault(cause, now)
            elif state in (READY, EMITTING, PAUSED) and not (inp.key_on and inp.interlock_closed):
                self._enter(STANDBY, now)  # the session ends; the delivered dose stays on record
            elif state == STANDBY:
                if arm:
                    self._arm(inp, dosimeter, now)
            elif state == READY:
                if self.footswitch_released:  # both contacts say so: a glitch is not a release
                    self._seen_released = True
                if arm:
                    self._enter(STANDBY, now)
                elif (self._seen_released and self.footswitch_pressed
                      and ticks_diff(now, self.entered_ms) >= self.emission_delay_ms
                      and not self._dose_reached(dosimeter)):
                    self._enter(EMITTING, now)
            elif state == EMITTING:
                if self._dose_reached(dosimeter):
                    self._enter(COMPLETE, now)
                elif not self.footswitch_pressed:
                    self._enter(PAUSED, now)
            elif state == PAUSED:
                if arm:
                    self._enter(STANDBY, now)
                elif self.footswitch_pressed:
                    self._enter(EMITTING, now)
            elif state == COMPLETE and (arm or reset):
                self._enter(STANDBY, now)
        self._drive(out, now)

    def fault(self, code, now_ms):
        """Latch a fault (also called by the loop when the firmware itself fails)."""
        if self.state != FAULT:
            self.fault_code = code
            self._enter(FAULT, now_ms)

    def _arm(self, inp, dosimeter, now):
        self.refusals += 1  # undone below when the arm request is accepted
        if self.treatment is None:
            self.refusal = "no treatment selected"
        elif not inp.key_on:
            self.refusal = "key switch off"
        elif not inp.interlock_closed:
            self.refusal = "interlock open"
        else:
            self.refusals -= 1
            self.refusal = None
            dosimeter.clear()
            if self.power_monitor is not None:
                self.power_monitor.restart()
            self._seen_released = False
            self._enter(READY, now)

    def _dose_reached(self, dosimeter):
        # Stop when at most half a tick's energy is left: on ticks that come on time the error is
        # then at most half a tick's energy (rounded down to the millijoule); a late tick adds
        # its lateness times the power.
        power_uw = self.treatment.power_uw_steps[self.thermal.derate_step]  # while on
        half_tick_mj = power_uw * self.half_tick_ms // 1000000
        return self.treatment.target_mj - dosimeter.energy_mj <= half_tick_mj

    def _enter(self, state, now_ms):
        self.state = state
        self.entered_ms = now_ms

    def _drive(self, out, now):
        state = self.state
        out.safe()
        self.power_uw = self._heat_uw = 0
        if state == EMITTING:
            t = self.treatment
            step = self.thermal.derate_step  # all of the power unless the heatsink is hot
            duty = t.duty_steps[step]
            # Derated to nothing, the gate stays closed until the heatsink cools; slow pulses
            # are made here, on tick boundaries, fast ones by the hardware gate.
            if duty:
                # The thermal checks see the average heat on every tick of emission, on-ticks
                # and off-ticks of slow pulses alike: they must never think emission stopped.
                self._heat_uw = t.heat_uw_steps[step]
                if not t.gate_period_ms or \
                        ticks_diff(now, self.entered_ms) % t.gate_period_ms < t.gate_on_ms:
                    out.pwm_duty_u16 = duty
                    out.laser_enable = True
                    if t.mode == "pulsed" and not t.gate_period_ms:
                        out.gate_hz, out.gate_duty_u16 = t.pulse_hz, t.gate_duty_u16
                    self.power_uw = t.power_uw_steps[step]
        out.emission_led = state in (READY, EMITTING, PAUSED)
        since = ticks_diff(now, self.entered_ms)
        if state == READY and since < self.emission_delay_ms:
            tone = _WARNING_TONE
        elif state == EMITTING:
            tone = _EMISSION_TONE
        elif state == FAULT:
            tone = _ALARM_TONE
        else:
            return
        out.buzzer = since % tone[0] < tone[1]
