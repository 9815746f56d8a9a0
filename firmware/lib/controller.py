# The treatment state machine: pure logic from one tick's Inputs to that tick's Outputs.
# It never touches hardware or reads the clock; the time comes in with the inputs.
# docs/states.md has the diagram and the transition table; each row is tested.
#
#   STANDBY --arm--> READY --(delay over, footswitch seen released, then pressed)--> EMITTING
#   EMITTING --release--> PAUSED --press--> EMITTING        EMITTING --dose reached--> COMPLETE
#   COMPLETE --arm, reset or ack--> STANDBY                 READY/PAUSED --arm--> STANDBY
#   READY for ready_timeout, PAUSED for paused_timeout --> STANDBY (session ended)
#   key off or interlock open in READY/EMITTING/PAUSED --> STANDBY
#   any state --fault--> FAULT (latched) --reset, once the cause is gone--> STANDBY
#   BOOT --self-test done--> STANDBY (arming locked if it failed), or FAULT after a watchdog reset
import alarms
from footswitch import Footswitch
from micropython import const
from power_monitor import PowerMonitor
from records import ACK, ARM, DISARM, RESET
from thermal import NORMAL, ThermalMonitor
from thermistor import OK
from ticks import ticks_add, ticks_diff

BOOT = const(0)  # until the loop's boot self-test has run (App.self_test)
STANDBY = const(1)
READY = const(2)
EMITTING = const(3)
PAUSED = const(4)
COMPLETE = const(5)
FAULT = const(6)
STATE_NAMES = ("BOOT", "STANDBY", "READY", "EMITTING", "PAUSED", "COMPLETE", "FAULT")

# Fault codes (strings are interned constants: reporting one allocates nothing). The thermal
# ones are thermal.py's, OUTPUT_POWER_DEVIATION power_monitor.py's; docs/states.md lists all.
FOOTSWITCH_FAULT = "FOOTSWITCH_FAULT"
ESTOP = "ESTOP"
SOFTWARE = "SOFTWARE"
OUT_OF_MEMORY = "OUT_OF_MEMORY"
LOOP_OVERRUN = "LOOP_OVERRUN"
WATCHDOG_RESET = "WATCHDOG_RESET"

# Why a session (arm to STANDBY) ended: reported with its delivered dose.
COMPLETED = "COMPLETE"
DISARMED = "DISARMED"
KEY_OFF = "KEY_OFF"
INTERLOCK_OPEN = "INTERLOCK_OPEN"
READY_TIMEOUT = "READY_TIMEOUT"
PAUSED_TIMEOUT = "PAUSED_TIMEOUT"
FAULTED = "FAULT"


class Controller:
    """`board` is a validated board dict; `treatment` a Treatment or None (nothing selected)."""

    def __init__(self, board, treatment, now_ms):
        self.thermal = ThermalMonitor(board, now_ms)
        monitor = board.get("power_monitor")
        self.power_monitor = PowerMonitor(monitor, board["loop_ms"]) if monitor else None
        timing = board["timing"]
        self.footswitch = Footswitch(timing["footswitch_debounce_ms"],
                                     timing["footswitch_mismatch_ms"])
        self.emission_delay_ms = timing["emission_delay_ms"]
        self.ready_timeout_ms = timing["ready_timeout_ms"]
        self.paused_timeout_ms = timing["paused_timeout_ms"]
        self.silence_ms = timing["alarm_silence_ms"]
        self.half_tick_ms = board["loop_ms"] // 2 or 1
        self.treatment = treatment
        self.state = BOOT
        # Why arming is locked until the next boot (the self-test; settings changed), or None;
        # and why it is refused for now (the journal cannot take more), or None. Set only through
        # booted(), lock(), block() and unblock(), so that which reason wins is decided here.
        self.locked = None
        self.blocked = None
        # Why only a service calibration point may arm (this device has no valid settings), or
        # None; the supervisor holds the same rule on its own.
        self.calibration_only = None
        self.entered_ms = now_ms
        self.fault_code = None
        self.refusal = None  # why the last arm request was refused, for the operator
        self.refusals = 0  # counts refused arm requests, so that each one is reported
        self.session_end = None  # why the last session ended
        self.sessions_ended = 0  # counts them, so that each one is reported
        self._ended_now = False  # a session ended in this tick (a fault then still wins)
        self.power_uw = 0  # the calibrated power commanded this tick (after derating)
        self.peak_uw = 0  # the light while the enable line is high (a hardware gate's peak)
        self._heat_uw = 0  # the diode's heat bound at that power (for the runaway check)
        self.alarm = alarms.NONE  # the alarm priority sounding (or silenced) now
        self.silenced = False  # a high alarm muted by ack, for silence_ms
        self._silenced_until_ms = now_ms
        self._warm_since_ms = now_ms  # since the heatsink left NORMAL: the medium alarm's start
        self._seen_released = False
        self._arm_was = self._reset_was = self._ack_was = True  # held at boot is not a press

    @property
    def temp_c(self):
        """The heatsink temperature of the last reading, or None while the sensor is faulty."""
        thermal = self.thermal
        return thermal.temp_mc / 1000 if thermal.status == OK else None

    def _fault_cause(self, inp, sensed_fault):
        """The active fault cause, or None."""
        if inp.estop_pressed:
            return ESTOP
        if sensed_fault is not None:
            return sensed_fault
        if self.footswitch.miswired(inp.t_ms):
            return FOOTSWITCH_FAULT
        return None

    # -- the step ------------------------------------------------------------------------------

    def step(self, inp, dosimeter, out):
        """Advance one tick: read `inp`, use `dosimeter`'s count, and fill `out`."""
        now = inp.t_ms
        self._ended_now = False
        self.footswitch.read(inp.footswitch_no_closed, inp.footswitch_nc_closed, now)
        # Both monitors judge the tick that just ended, with the power commanded for it.
        level_was = self.thermal.level
        sensed_fault = self.thermal.update(inp.thermistor_samples, now, self._heat_uw)
        if level_was == NORMAL and self.thermal.level != NORMAL:
            self._warm_since_ms = now
        if self.power_monitor is not None:
            # A calibration point is there because the curve may be wrong: no deviation check
            # against it (the supervisor's absolute light limit still holds).
            deviation = self.power_monitor.update(
                inp.monitor_uv, self.power_uw,
                self.state == EMITTING and not self.treatment.is_calibration)
            sensed_fault = sensed_fault or deviation
        arm = inp.arm_pressed and not self._arm_was
        reset = (inp.reset_pressed and not self._reset_was) or inp.command == RESET
        ack = (inp.ack_pressed and not self._ack_was) or inp.command == ACK
        self._arm_was, self._reset_was = inp.arm_pressed, inp.reset_pressed
        self._ack_was = inp.ack_pressed
        if self.state == BOOT:
            pass  # nothing operates before the self-test; the outputs stay off
        elif self.state == FAULT:
            self._in_fault(inp, reset, ack, now)
        else:
            cause = self._fault_cause(inp, sensed_fault)
            if cause is not None:
                self.fault(cause, now)
            else:
                self._operate(inp, dosimeter, arm, reset, ack, now)
        self.drive(out, now)

    def booted(self, now_ms, locked=None, fault_code=None):
        """The end of BOOT: STANDBY, with arming locked for `locked` (the self-test's reason),
        or straight into FAULT with `fault_code` (the watchdog reset the chip)."""
        self.locked = locked
        self._enter(STANDBY, now_ms)
        if fault_code is not None:
            self.fault(fault_code, now_ms)

    def lock(self, reason):
        """Lock arming until the next boot, for `reason`; a lock already set keeps its own."""
        if self.locked is None:
            self.locked = reason

    def block(self, reason):
        """Refuse arming for now, for `reason`: the latest reason replaces any earlier one."""
        self.blocked = reason

    def unblock(self, reason):
        """Arming no longer refused for `reason`; a block for another reason stays."""
        if self.blocked == reason:
            self.blocked = None

    def take_over(self, failed):
        """Carry on from a controller whose tick failed (it is latched in FAULT): its lock, its
        fault and when it began (the alarm pattern runs on), the alarm's silence, the buttons'
        last levels, its counters (nothing is reported twice), and its monitors: the history
        they hold (a contact disagreeing since, a heatsink rising since) decides whether a
        cause is gone when reset is pressed."""
        self.thermal, self.footswitch = failed.thermal, failed.footswitch
        self.power_monitor = failed.power_monitor
        self.locked, self.blocked = failed.locked, failed.blocked
        self.calibration_only = failed.calibration_only
        self.state, self.entered_ms, self.fault_code = FAULT, failed.entered_ms, failed.fault_code
        self.silenced, self._silenced_until_ms = failed.silenced, failed._silenced_until_ms
        self.sessions_ended, self.session_end = failed.sessions_ended, failed.session_end
        self.refusals, self.refusal = failed.refusals, failed.refusal
        self._arm_was, self._reset_was = failed._arm_was, failed._reset_was
        self._ack_was = failed._ack_was  # a press that began before the failure is not new

    def _in_fault(self, inp, reset, ack, now):
        if ack:  # silence the alarm for a while; the fault stays latched
            self._silenced_until_ms = ticks_add(now, self.silence_ms)
            self.silenced = True
        elif self.silenced and ticks_diff(now, self._silenced_until_ms) >= 0:
            self.silenced = False
        # Reset clears the latch only once every cause is gone. It restarts no monitor: their
        # evidence (a frozen reading, a heatsink rising since) is not the operator's to clear.
        if reset and self.thermal.cause_gone() and self._fault_cause(inp, None) is None:
            self.fault_code = None
            self.silenced = False
            self._enter(STANDBY, now)

    def _operate(self, inp, dosimeter, arm, reset, ack, now):
        state = self.state
        since = ticks_diff(now, self.entered_ms)
        pressed = self.footswitch.pressed
        if state in (READY, EMITTING, PAUSED):
            if not inp.key_on:
                return self._end_session(KEY_OFF, now)
            if not inp.interlock_closed:
                return self._end_session(INTERLOCK_OPEN, now)
            if inp.command == DISARM:  # the serial port's disarm: also stops emission
                return self._end_session(DISARMED, now)
        if state == STANDBY:
            if arm or inp.command == ARM:
                self._arm(inp, dosimeter, now)
        elif state == READY:
            if self.footswitch.released:  # both contacts say so: a glitch is not a release
                self._seen_released = True
            if arm:
                self._end_session(DISARMED, now)
            elif (self._seen_released and pressed and since >= self.emission_delay_ms
                  and not self._dose_reached(dosimeter)):
                self._enter(EMITTING, now)
            elif since >= self.ready_timeout_ms:
                self._end_session(READY_TIMEOUT, now)
        elif state == EMITTING:
            if self._dose_reached(dosimeter):
                self._end_session(COMPLETED, now, COMPLETE)
            elif not pressed:
                self._enter(PAUSED, now)
        elif state == PAUSED:
            if arm:
                self._end_session(DISARMED, now)
            elif pressed:
                # Paused while derated and resumed cooler, the dose may already be within half a
                # tick at the power a resume would use: complete without emitting again.
                if self._dose_reached(dosimeter):
                    self._end_session(COMPLETED, now, COMPLETE)
                else:
                    self._enter(EMITTING, now)
            elif since >= self.paused_timeout_ms:
                self._end_session(PAUSED_TIMEOUT, now)
        elif state == COMPLETE and (arm or reset or ack):
            self._enter(STANDBY, now)

    def fault(self, code, now_ms):
        """Latch a fault (also called by the loop when the firmware itself fails). A session
        that ended in this same tick (the key turned as the supervisor tripped) ended FAULT:
        a fault always wins."""
        if self.state != FAULT:
            if self.state in (READY, EMITTING, PAUSED):
                self.session_end = FAULTED
                self.sessions_ended += 1
            elif self._ended_now:
                self.session_end = FAULTED
            self.fault_code = code
            self.silenced = False
            self._enter(FAULT, now_ms)

    def _arm(self, inp, dosimeter, now):
        self.refusals += 1  # undone below when the arm request is accepted
        if self.locked is not None:
            self.refusal = self.locked
        elif self.blocked is not None:
            self.refusal = self.blocked
        elif self.treatment is None:
            self.refusal = "no treatment selected"
        elif self.calibration_only is not None and not self.treatment.is_calibration:
            self.refusal = self.calibration_only
        elif not inp.key_on:
            self.refusal = "key switch off"
        elif not inp.interlock_closed:
            self.refusal = "interlock open"
        else:
            self.refusals -= 1
            self.refusal = None
            dosimeter.clear()
            self._seen_released = False
            self._enter(READY, now)

    def _end_session(self, why, now, state=STANDBY):
        """The session ends; the delivered dose stays on record and is reported with `why`."""
        self.session_end = why
        self.sessions_ended += 1
        self._ended_now = True
        self._enter(state, now)

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

    # -- the outputs ---------------------------------------------------------------------------

    def drive(self, out, now):
        """Fill `out` for the present state (step does; the loop again after latching a fault
        the supervisor found)."""
        state = self.state
        out.safe()
        self.power_uw = self.peak_uw = self._heat_uw = 0
        since = ticks_diff(now, self.entered_ms)
        if state == EMITTING:
            self._emit(out, since)
        # The laser can emit in READY and EMITTING, and in PAUSED on the next press.
        out.emission_led = state in (READY, EMITTING, PAUSED)
        priority, alarm_since = alarms.NONE, 0
        if state == FAULT:
            if not self.silenced:
                priority, alarm_since = alarms.HIGH, since
        elif self.thermal.level != NORMAL:
            priority, alarm_since = alarms.MEDIUM, ticks_diff(now, self._warm_since_ms)
        elif state == COMPLETE:
            priority, alarm_since = alarms.LOW, since
        self.alarm = alarms.HIGH if state == FAULT else priority
        tone = None
        if state == READY and since < self.emission_delay_ms:
            tone = alarms.WARNING_TONE
        elif state == EMITTING:
            tone = alarms.EMISSION_TONE
        out.buzzer = alarms.buzzer(priority, alarm_since, tone, since)

    def _emit(self, out, since):
        t = self.treatment
        step = self.thermal.derate_step  # all of the power unless the heatsink is hot
        duty = t.duty_steps[step]
        # Derated to nothing, the gate stays closed until the heatsink cools; slow pulses are
        # made here, on tick boundaries, fast ones by the hardware gate.
        if not duty:
            return
        # The thermal checks see the average heat on every tick of emission, on-ticks and
        # off-ticks of slow pulses alike: they must never think emission stopped.
        self._heat_uw = t.heat_uw_steps[step]
        if t.gate_period_ms and since % t.gate_period_ms >= t.gate_on_ms:
            return
        out.pwm_duty_u16 = duty
        out.laser_enable = True
        if t.mode == "pulsed" and not t.gate_period_ms:
            out.gate_hz, out.gate_duty_u16 = t.pulse_hz, t.gate_duty_u16
        self.power_uw = t.power_uw_steps[step]
        self.peak_uw = t.peak_uw_steps[step]
