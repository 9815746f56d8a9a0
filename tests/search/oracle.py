"""The safety oracle: what must hold after every tick of the real firmware, whoever drives it.

One definition, three searches: the exhaustive search (explorer.py) on a FakeHardware, the
hypothesis state machine (tests/test_state_machine.py) and the rhythm search
(tests/test_rhythms.py) on the plant of tests/firmware/plant.py. Each makes an `Oracle` for its
Rig and calls `check(now_ms)` after every tick; the checks a harness cannot feed are idle in it
(the plant's truth needs a Plant, the heatsink's a Plant that reads its own heatsink, the warm
step the exhaustive search's abstract readings). docs/search.md lists the checks and which search
runs which.

The firmware's contract, from the inputs it was given and the outputs it applied (any Rig):

- emission (the enable line or a duty) only in EMITTING, and never with the key off, the
  interlock open, the e-stop pressed, the footswitch not pressed on both contacts, the reading
  invalid or at or above shutdown_c, or a fault latched (FAULT or a supervisor trip); no duty
  without the enable line; the supervisor's verdict false whenever any of those holds;
- where the enable line follows the state machine (a treatment without loop-made pulses): on
  exactly when the state is EMITTING and the duty at the derate step is not zero (the supervisor
  never has to veto the state machine, but for a reading within a rounding error of the
  shutdown voltage, SHUTDOWN_ROUNDING_UV);
- EMITTING only with all of those conditions met, the press debounced, the emission delay over
  since READY was entered, the footswitch seen released in READY since then, and more than half
  a tick's energy left at the present power (at the tick's start: a late tick's light since is
  not the state machine's to know);
- every state change is a row of docs/states.md's transition table; a session ends exactly when
  a session state (READY, EMITTING, PAUSED) is left for another (or an arm began one and a
  supervisor trip ended it in one tick), for a reason that tick's inputs show (a fault always
  wins); READY is entered only on an arm (press or serial) with the key on and the interlock
  closed, the dose count at 0; COMPLETE is left only on arm, reset or ack; FAULT only for
  STANDBY, on a reset, with the e-stop released, the contacts agreeing, and the reading valid
  and below shutdown_c - hysteresis_c;
- in FAULT a code that never changes (unless a reset cleared it and a supervisor trip latched
  again in the same tick), the HIGH alarm, silenced exactly for alarm_silence_ms after an ack,
  and (`buzzer`) its burst pattern; outside FAULT no code; the firmware itself never fails
  (SOFTWARE, OUT_OF_MEMORY) unless the harness made it (`failures_injected`);
- e-stop pressed implies FAULT; key off or interlock open implies not READY, EMITTING, PAUSED;
  READY and PAUSED never outlast their timeouts; the emission LED is lit exactly in READY,
  EMITTING and PAUSED;
- the dose counted never exceeds the target by more than half a tick's energy at full power
  (a hardware gate: and a pulse at the peak; pulses the loop makes: a tick at the peak less
  half a tick) and the light of late ticks (`check`'s late_ms); with the state machine's dose
  stop broken (`dose_bug`), the count since the supervisor's budget began (READY, or a budget
  session of PlantTruth's) never exceeds the budget + a tick.

The monitors' evidence, which no operator action may reset (issue 14):

- every sample one value for stuck_s of emission in all (the ticks the state machine commanded
  heat; pauses left out) latches THERMISTOR_STUCK within STUCK_SLACK_TICKS;
- an enable line stuck high latches ENABLE_STUCK within 2 ticks of the first tick it can be seen
  (at once unless it is driven high steadily);
- footswitch contacts that disagreed for the mismatch window in all since the pedal was last up
  on both have latched a fault within two ticks more;
- (the exhaustive search's monitors' alphabet, `warm_step`) a step up to the warm reading after
  runaway_window_s + 1 s at the normal one, then a second of heat without a break, latches a
  fault within RUNAWAY_SLACK_TICKS.

The plant's truth (a Plant; PlantTruth) is the rest: light only with every permission, no light
with the true heatsink at or above shutdown_c, each session's light and each supervisor budget's
within their bounds, the count equal to the light that went out, a diode 30 % off latched, and
the runaway rule judged from outside (RunawayOracle)."""

from alarms import HIGH
from controller import STATE_NAMES
from records import ACK, ARM, DISARM, RESET
from thermal import DERATE_STEPS
from thermistor import OK
from ticks import ticks_add, ticks_diff

from search.states_doc import state_changes

SESSION_STATES = ("READY", "EMITTING", "PAUSED")
ALLOWED = state_changes()
COUNT_TOLERANCE_MJ = 2
SHUTDOWN_ROUNDING_UV = 100  # about 3 m°C at 45 °C on the sim board's divider
STUCK_SLACK_TICKS = 3  # the samples seen frozen a tick late, the heat a tick late, rounding
RUNAWAY_SLACK_TICKS = 2  # the one-second check falls on a tick, the heat it sees a tick late
FIRMWARE_FAILURES = ("SOFTWARE", "OUT_OF_MEMORY")
HEATSINK_EPS_C = 0.02  # the thermistor grid's interpolation, rounded microvolts
ORACLE_MARGIN_C = 0.4  # the runaway rule's excess RunawayOracle requires before it insists
ORACLE_DEADLINE_MS = 2000
_READINGS = {}  # (sensor, uv) -> (what is wrong, or None; temperature mC)


def _mc(celsius):
    return int(celsius * 1000 + 0.5)


def budget_mj(board, treatment):
    """The supervisor's energy budget for a session (supervisor.py): the dose + 1 % + two
    ticks at the diode's maximum."""
    return (treatment.target_mj * 1010 // 1000
            + int(board["diode"]["max_power_w"] * board["loop_ms"] * 2 + 0.5))


class Spec:
    """What the oracle judges by: the board's limits and the meaning of a reading. Never
    changes (the exhaustive search shares it between states instead of copying it)."""

    def __init__(self, board, sensor, buzzer, warm_step):
        timing, thermal = board["timing"], board["thermal"]
        self.board = board
        self.period_ms = board["loop_ms"]
        self.emission_delay_ms = timing["emission_delay_ms"]
        self.debounce_ms = timing["footswitch_debounce_ms"]
        self.mismatch_ms = timing["footswitch_mismatch_ms"]
        self.ready_timeout_ms = timing["ready_timeout_ms"]
        self.paused_timeout_ms = timing["paused_timeout_ms"]
        self.silence_ms = timing["alarm_silence_ms"]
        self.stuck_limit_ms = int(thermal["stuck_s"] * 1000) + STUCK_SLACK_TICKS * self.period_ms
        self.shutdown_mc = _mc(thermal["shutdown_c"])
        self.clear_mc = _mc(thermal["shutdown_c"] - thermal["hysteresis_c"])
        self.shutdown_uv = int(sensor.uv_at(thermal["shutdown_c"]))
        self.sensor = sensor
        self.buzzer = buzzer
        self.warm_step = warm_step
        self.warm_seen_ms = (thermal["runaway_window_s"] + 1) * 1000
        self.warm_limit_ms = 1000 + RUNAWAY_SLACK_TICKS * self.period_ms

    def reading(self, samples):
        """(what is wrong with this tick's reading for emission, or None; its temperature in
        mC, or None): the median sample, through the firmware's own thermistor model."""
        uv = sorted(samples)[len(samples) // 2]
        found = _READINGS.get((self.sensor, uv))
        if found is None:
            if len(_READINGS) > 100000:
                _READINGS.clear()
            sensor = self.sensor
            if sensor.check(uv) != OK:
                found = ("the reading invalid", None)
            else:
                temp = sensor.temp_mc(uv)
                found = ("the heatsink at shutdown" if temp >= self.shutdown_mc else None, temp)
            _READINGS[(self.sensor, uv)] = found
        return uv, found[0], found[1]


class Oracle:
    """The checks after every tick of `rig` (see the module docstring). The harness says what it
    did to the firmware: `dose_bug` (the state machine's dose stop broken), `failures_injected`
    (it made ticks fail), `check(now_ms, late_ms)` (that tick's outputs took effect late_ms
    late). `buzzer`: check the FAULT alarm's burst pattern (the exhaustive search does not: its
    merging leaves the alarm's phase out). `warm_step`: (normal uV, warm uV) of the exhaustive
    search's monitors' alphabet.

    Lives on the Rig in the exhaustive search: saved, restored and keyed with it (what it
    remembers is state: the merging sees it as it sees the firmware's)."""

    def __init__(self, rig, buzzer=True, warm_step=None):
        app, hw = rig.app, rig.hw
        c = app.controller
        self.rig = rig
        self.spec = Spec(rig.board, c.thermal.sensor, buzzer, warm_step)
        self.dose_bug = False
        self.failures_injected = False
        self.late_ms = 0  # the latest the outputs of a tick took effect (the most so far)
        # The count when the present supervisor's budget began (PlantTruth sees it begin), or
        # 0: when READY cleared it.
        self.count_base = 0
        # After the last tick: what this one is compared with.
        self.tick_ms = ticks_add(rig.now_ms, -rig.period_ms)
        self.state = STATE_NAMES[c.state]
        self.fault_code = c.fault_code
        self.sessions = c.sessions_ended
        self.safe_offs = hw.safe_off_calls
        lv = hw.levels
        # The buttons' levels (plain attributes: a tuple would be a new object every tick).
        self.arm_was, self.reset_was = lv["arm_pressed"], lv["reset_pressed"]
        self.ack_was = lv["ack_pressed"]
        self.steady_was = hw.enable and not hw.gate_hz  # the enable driven high steadily
        self.heat_was = False  # the state machine commanded heat
        # What the checks remember.
        self.entered_ms = c.entered_ms  # the state's entry
        self.ready_ms = None  # READY's last entry
        self.released_in_ready = False  # both contacts seen up in READY since then
        self.press_ms = None  # the first tick of the present press (both contacts)
        self.mismatch_ms = None  # the first tick of the contacts' present disagreement
        self.disagreed = False  # the contacts disagreed last tick ...
        self.disagreed_ms = 0  # ... and so long in all since the pedal was last up on both
        self.ack_ms = None  # the ack that silenced the present FAULT's alarm
        self.frozen_uv = None  # every sample this value ...
        self.frozen_ms = 0  # ... for this much emission (heat), since it froze or latched
        self.stuck_unseen = 0  # ticks an enable stuck high could have been seen, unlatched
        self.normal_ms = 0  # the normal reading, up to warm_seen_ms (warm_step)
        self.warm_ms = None  # heat without a break since the reading stepped up to warm
        self.plant = PlantTruth(self) if hasattr(hw, "emitted_j") else None

    def check(self, now_ms, late_ms=0):
        """The checks after the tick that ran at `now_ms`: a list of violations (empty: all
        hold)."""
        rig, spec = self.rig, self.spec
        app, hw = rig.app, rig.hw
        c, sup = app.controller, app.supervisor
        inp, lv = app.inputs, hw.levels
        bad = []
        now = now_ms
        dt = ticks_diff(now, self.tick_ms)
        self.tick_ms = now
        if late_ms > self.late_ms:
            self.late_ms = late_ms
        failed = hw.safe_off_calls != self.safe_offs  # the tick failed: it ran nothing
        self.safe_offs = hw.safe_off_calls
        state, was = STATE_NAMES[c.state], self.state
        code = c.fault_code
        t = app.treatment
        energy = app.dosimeter.energy_mj
        uv, problem, temp_mc = spec.reading(inp.thermistor_samples)
        key_on, interlock = lv["key_on"], lv["interlock_closed"]
        estop = lv["estop_pressed"]
        no, nc = lv["footswitch_no_closed"], lv["footswitch_nc_closed"]
        pressed, released = no and not nc, nc and not no
        command = inp.command
        arm = (lv["arm_pressed"] and not self.arm_was) or command == ARM
        reset = (lv["reset_pressed"] and not self.reset_was) or command == RESET
        ack = (lv["ack_pressed"] and not self.ack_was) or command == ACK
        self.arm_was, self.reset_was = lv["arm_pressed"], lv["reset_pressed"]
        self.ack_was = lv["ack_pressed"]
        self._footswitch(now, dt, pressed, released, no == nc, state, bad)
        trip = sup.trip

        unsafe = []
        if not key_on:
            unsafe.append("key off")
        if not interlock:
            unsafe.append("interlock open")
        if estop:
            unsafe.append("e-stop pressed")
        if not pressed:
            unsafe.append("footswitch not pressed")
        if problem is not None:
            unsafe.append(problem)
        if state == "FAULT" or code is not None:
            unsafe.append("fault latched")
        if trip is not None:
            unsafe.append("supervisor trip %s" % trip)

        emitting = bool(hw.enable) or bool(hw.duty_u16)
        if emitting and state != "EMITTING":
            bad.append("emission in %s" % state)
        if emitting and unsafe:
            bad.append("emission with %s" % ", ".join(unsafe))
        if hw.duty_u16 and not hw.enable:
            bad.append("duty without the enable line")
        if sup.permitted and unsafe and not failed:  # (a failed tick left the last verdict)
            bad.append("supervisor permits emission with %s" % ", ".join(unsafe))
        if estop and state != "FAULT":
            bad.append("e-stop pressed in %s" % state)
        if not (key_on and interlock) and state in SESSION_STATES:
            bad.append("%s with the key off or the interlock open" % state)
        if hw.led != (state in SESSION_STATES):
            bad.append("LED %s in %s" % ("on" if hw.led else "off", state))
        if code in FIRMWARE_FAILURES and not self.failures_injected:
            bad.append("the firmware failed: %s" % code)
        if t is not None:
            self._dose(t, energy, bad)

        # The state change: its row of the table, its session end, what the checks remember.
        ended = c.sessions_ended - self.sessions
        self.sessions = c.sessions_ended
        relatched = False
        if state != was:
            self._transition(now, was, state, ended, energy, problem, temp_mc, arm, reset, ack,
                             command == DISARM, bad)
            self.entered_ms, self.ack_ms = now, None
            if state == "READY":
                self.ready_ms = now
                self.released_in_ready = False
                self.count_base = 0
        elif ended:
            bad.append("a session ended without a state change")
        elif state == "FAULT" and reset and c.entered_ms == now:
            # The reset cleared the fault, and a cause only the supervisor sees (its trip: an
            # enable stuck high) latched it again in the same tick: the alarm starts over.
            relatched = True
            if code != trip:
                bad.append("FAULT %s latched again in the tick of its reset, the supervisor's "
                           "trip %s" % (code, trip))
            self.entered_ms, self.ack_ms = now, None
        if was == "READY" and state == "READY" and released:
            self.released_in_ready = True
        if state == "READY" or state == "PAUSED":
            limit = spec.ready_timeout_ms if state == "READY" else spec.paused_timeout_ms
            if ticks_diff(now, self.entered_ms) >= limit:
                bad.append("%s outlasted its timeout" % state)

        if state == "EMITTING":
            self._emitting(now, c, t, energy, late_ms, unsafe, bad)
        if t is not None and not t.gate_period_ms:
            # The enable line follows the state machine (the loop makes no pulses).
            asked = state == "EMITTING" and t.duty_steps[c.thermal.derate_step] != 0
            if asked and not hw.enable and not failed:
                if sup.permitted or abs(c.thermal.uv - spec.shutdown_uv) > SHUTDOWN_ROUNDING_UV:
                    bad.append("the supervisor vetoed EMITTING's light (%s)" % sup.why)
            elif hw.enable != asked:
                bad.append("the enable line %s in %s" % ("on" if hw.enable else "off", state))

        if state == "FAULT":
            if code is None:
                bad.append("FAULT without a code")
            if was == "FAULT" and ack and not relatched:  # (a fault latched since is loud)
                self.ack_ms = now
            if not failed:
                self._alarm(now, c, hw, bad)
            if was == "FAULT" and code != self.fault_code and not relatched:
                bad.append("latched code changed %s -> %s" % (self.fault_code, code))
        elif code is not None:
            bad.append("fault code %s outside FAULT" % code)
        self.state, self.fault_code = state, code

        self._monitors(dt, inp.thermistor_samples, uv, state, c, t, sup, hw, failed, bad)
        if self.plant is not None:
            self.plant.check(dt, state, was, arm, late_ms, bad)
        return bad

    # -- the parts of check ---------------------------------------------------------------------

    def _footswitch(self, now, dt, pressed, released, disagree, state, bad):
        if pressed:
            if self.press_ms is None:
                self.press_ms = now
        else:
            self.press_ms = None
        if pressed or released:
            self.mismatch_ms = None
        elif self.mismatch_ms is None:
            self.mismatch_ms = now
        # The disagreement adds up until the pedal is seen up on both contacts.
        if self.disagreed:
            self.disagreed_ms += dt
        self.disagreed = disagree
        if released:
            self.disagreed_ms = 0
        if self.disagreed_ms > self.spec.mismatch_ms + 2 * dt and state != "FAULT":
            bad.append("the footswitch contacts disagreed for %d ms since last up on both and "
                       "no fault" % self.disagreed_ms)

    def _dose(self, t, energy, bad):
        period = self.spec.period_ms
        peak_uw = t.peak_uw_steps[DERATE_STEPS]  # the light while on (CW: the power)
        late_mj = (peak_uw * self.late_ms + 999999) // 1000000
        # A tick's light as the dosimeters count it, at most: the average's (CW), the average's
        # and a pulse at the peak (a hardware gate: counted by its phase), the peak's (an
        # on-tick of pulses the loop makes).
        if t.gate_period_ms:
            tick_mj = (peak_uw * period + 999999) // 1000000
        else:
            tick_mj = (t.power_uw * period + 999999) // 1000000
            if t.pulse_hz:
                pulse_nj = peak_uw * 1000 * t.gate_duty_u16 // 65536 // t.pulse_hz
                tick_mj += (pulse_nj + 999999) // 1000000
        if self.dose_bug:  # the supervisor's budget is all that stops the light (its own count)
            budget = budget_mj(self.spec.board, t)
            if energy - self.count_base > budget + tick_mj + late_mj + COUNT_TOLERANCE_MJ:
                bad.append("dose %d mJ (%d since the supervisor's budget began) beyond the "
                           "budget %d mJ" % (energy, energy - self.count_base, budget))
            return
        # The state machine stops with at most half a tick's energy left at the average power;
        # the last tick adds a tick's light (CW: the other half).
        half_tick_mj = t.power_uw * period // 2000000
        over_mj = half_tick_mj if not t.pulse_hz else tick_mj - half_tick_mj
        if energy > t.target_mj + over_mj + late_mj:
            bad.append("dose %d mJ beyond the target %d mJ" % (energy, t.target_mj))

    def _transition(self, now, was, state, ended, energy, problem, temp_mc, arm, reset, ack,
                    disarm, bad):
        rig, spec = self.rig, self.spec
        lv = rig.hw.levels
        if (was, state) not in ALLOWED:
            bad.append("%s -> %s is no row of docs/states.md" % (was, state))
        end = rig.app.controller.session_end
        leaves_session = was in SESSION_STATES and state not in SESSION_STATES
        # A session that an arm began and a supervisor trip ended in the same tick.
        flash = (was not in SESSION_STATES and state == "FAULT" and end == "FAULT" and arm
                 and lv["key_on"] and lv["interlock_closed"])
        if ended != (1 if leaves_session else 0) and not (flash and ended == 1):
            bad.append("%d sessions ended on %s -> %s" % (ended, was, state))
        elif leaves_session:
            if state == "FAULT" or end == "FAULT":  # a fault always wins
                why = state == "FAULT" and end == "FAULT"
            elif state == "COMPLETE" or end == "COMPLETE":
                why = state == "COMPLETE" and end == "COMPLETE"
            elif end == "KEY_OFF":
                why = not lv["key_on"]
            elif end == "INTERLOCK_OPEN":
                why = lv["key_on"] and not lv["interlock_closed"]
            elif end == "DISARMED":
                why = (arm and was in ("READY", "PAUSED")) or disarm
            elif end == "READY_TIMEOUT":  # (READY's entry is the state's: entered_ms)
                why = was == "READY" and ticks_diff(now, self.entered_ms) >= \
                    spec.ready_timeout_ms
            elif end == "PAUSED_TIMEOUT":
                why = was == "PAUSED" and ticks_diff(now, self.entered_ms) >= \
                    spec.paused_timeout_ms
            else:
                why = False
            if not why:
                bad.append("a session ended %s on %s -> %s" % (end, was, state))
        if state == "READY":
            if not (arm and lv["key_on"] and lv["interlock_closed"]):
                bad.append("READY without an arm press with key and interlock")
            if energy != 0:
                bad.append("READY with %d mJ counted" % energy)
        if was == "COMPLETE" and state == "STANDBY" and not (arm or reset or ack):
            bad.append("COMPLETE left without an acknowledgement")
        if was == "FAULT":
            if state != "STANDBY" or not reset:
                bad.append("FAULT left for %s without a reset press" % state)
            causes = []
            if lv["estop_pressed"]:
                causes.append("e-stop pressed")
            if problem == "the reading invalid" or temp_mc is None:
                causes.append("the reading invalid")
            elif temp_mc >= spec.clear_mc:
                causes.append("the heatsink %.2f C" % (temp_mc / 1000))
            if self.mismatch_ms is not None and \
                    ticks_diff(now, self.mismatch_ms) >= spec.mismatch_ms:
                causes.append("the footswitch contacts disagreeing")
            if causes:
                bad.append("FAULT left with its cause present (%s)" % ", ".join(causes))

    def _emitting(self, now, c, t, energy, late_ms, unsafe, bad):
        """The state machine itself, not just the light, needs every condition."""
        spec = self.spec
        conditions = [u for u in unsafe if not u.startswith("supervisor")]
        if conditions:
            bad.append("EMITTING with %s" % ", ".join(conditions))
        if self.press_ms is None or ticks_diff(now, self.press_ms) < spec.debounce_ms:
            bad.append("EMITTING before the press is debounced")
        if self.ready_ms is None or ticks_diff(now, self.ready_ms) < spec.emission_delay_ms:
            bad.append("EMITTING before the emission delay")
        if not self.released_in_ready:
            bad.append("EMITTING without a release seen in READY")
        if t is not None and not self.dose_bug:
            # The state machine decided with the count at the tick's start: since then a late
            # tick's light went on to when its outputs took effect.
            half_tick_mj = t.power_uw_steps[c.thermal.derate_step] * spec.period_ms // 2000000
            late_mj = (t.power_uw * late_ms + 999999) // 1000000
            if t.target_mj - energy + late_mj <= half_tick_mj:
                bad.append("EMITTING at the dose (%d of %d mJ)" % (energy, t.target_mj))

    def _alarm(self, now, c, hw, bad):
        silenced = self.ack_ms is not None and ticks_diff(now, self.ack_ms) < \
            self.spec.silence_ms
        if c.silenced != silenced:
            bad.append("the alarm %s" % ("silenced" if c.silenced else "not silenced"))
        if c.alarm != HIGH:
            bad.append("FAULT's alarm of priority %d" % c.alarm)
        if self.spec.buzzer:
            # HIGH: 10 pulses of 120 ms on, 80 ms off, every 5 s from the fault; or silenced.
            t_ms = ticks_diff(now, self.entered_ms) % 5000
            if hw.buzzer != (not silenced and t_ms < 2000 and t_ms % 200 < 120):
                bad.append("the buzzer %s %d ms into FAULT's burst pattern"
                           % ("on" if hw.buzzer else "off", t_ms))

    def _monitors(self, dt, samples, uv, state, c, t, sup, hw, failed, bad):
        code = c.fault_code
        # Every sample one value: THERMISTOR_STUCK after stuck_s of heat, pauses left out.
        first = samples[0]
        if samples.count(first) == len(samples) and code != "THERMISTOR_STUCK":
            if first != self.frozen_uv:
                self.frozen_uv, self.frozen_ms = first, 0
            if self.heat_was:
                self.frozen_ms += dt
                if self.frozen_ms > self.spec.stuck_limit_ms:
                    bad.append("the samples frozen for %d ms of emission, no THERMISTOR_STUCK"
                               % self.frozen_ms)
        else:
            self.frozen_uv, self.frozen_ms = None, 0
        warm = self.spec.warm_step
        if warm is not None:
            self._warm_step(dt, uv, state, warm, bad)
        self.heat_was = heat = (state == "EMITTING" and t is not None
                                and t.duty_steps[c.thermal.derate_step] != 0)
        # An enable line stuck high: seen at once unless it is driven high steadily.
        if hw.enable_stuck and sup.trip != "ENABLE_STUCK" and code != "ENABLE_STUCK":
            if self.stuck_unseen or not self.steady_was:
                self.stuck_unseen += not failed  # a failed tick sees nothing
                if self.stuck_unseen >= 2:
                    bad.append("the enable line stuck high, and no ENABLE_STUCK %d ticks after "
                               "it could be seen" % self.stuck_unseen)
        else:
            self.stuck_unseen = 0
        self.steady_was = hw.enable and not hw.gate_hz
        return heat

    def _warm_step(self, dt, uv, state, warm, bad):
        """The heatsink stepped up to warm after runaway_window_s + 1 s at the normal
        temperature, then a second of heat without a break: a fault (THERMAL_RUNAWAY: the rise
        is beyond what the heat given and the warmest room allow, whatever the pedal did)."""
        normal_uv, warm_uv = warm
        spec = self.spec
        if uv == normal_uv:
            self.normal_ms = min(self.normal_ms + dt, spec.warm_seen_ms)
            self.warm_ms = None
        elif uv == warm_uv:
            if self.normal_ms >= spec.warm_seen_ms:  # the step up
                self.warm_ms = 0
            elif self.warm_ms is not None and (state == "FAULT" or not self.heat_was):
                self.warm_ms = None  # a fault latched, or a break in the heat
            elif self.warm_ms is not None:
                self.warm_ms += dt
                if self.warm_ms > spec.warm_limit_ms:
                    bad.append("the heatsink stepped up to warm and %d ms of heat later no "
                               "fault" % self.warm_ms)
            self.normal_ms = 0
        else:
            self.normal_ms, self.warm_ms = 0, None


# -- the plant's truth ---------------------------------------------------------------------------


class RunawayOracle:
    """The runaway rule of the contract, judged from outside with the firmware's own heat bound:
    over the last runaway_window_s seconds the heatsink may rise at most window * (heat -
    (start - max_ambient_c) / cooling_c_per_w) / capacity + runaway_margin_c, heat the most the
    diode was given in any second of the window, whether or not the pedal paused. Conservative
    where the firmware's seconds may fall differently: the heat over two more seconds, the
    warmest of three starts, ORACLE_MARGIN_C more, and only at a second of emission. Where it
    holds, a fault must latch within ORACLE_DEADLINE_MS."""

    def __init__(self, thermal):
        self.window = thermal["runaway_window_s"]
        self.conductance_w_per_c = 1.0 / thermal["cooling_c_per_w"]
        self.capacity_j_per_c = thermal["heatsink_capacity_j_per_c"]
        self.max_ambient_c = thermal["max_ambient_c"]
        self.margin_c = thermal["runaway_margin_c"] + ORACLE_MARGIN_C
        self.seconds = []  # (temperature C, most heat W) at each one-second mark
        self.next_ms = 1000
        self.heat_w = 0.0
        self.due_ms = None  # a fault must be latched by then
        self.excess_c = 0.0

    def forget(self):
        """A frozen reading is no history (the stuck check's business)."""
        self.seconds = []
        self.due_ms = None

    def tick(self, t_ms, temp_c, heat_w, emitting):
        if heat_w > self.heat_w:
            self.heat_w = heat_w
        if t_ms < self.next_ms:
            return
        self.next_ms += 1000 * ((t_ms - self.next_ms) // 1000 + 1)
        self.seconds.append((temp_c, self.heat_w))
        self.heat_w = 0.0
        w = self.window
        if len(self.seconds) > w + 3:
            del self.seconds[0]
        if len(self.seconds) < w + 3 or not emitting or self.due_ms is not None:
            return
        heat = max(h for _, h in self.seconds)
        start = max(temp for temp, _ in self.seconds[:3])
        allowed = w * (heat - self.conductance_w_per_c * (start - self.max_ambient_c)) \
            / self.capacity_j_per_c
        excess = temp_c - start - allowed - self.margin_c
        if excess > 0:
            self.due_ms, self.excess_c = t_ms + ORACLE_DEADLINE_MS, excess + self.margin_c


class Account:
    """The light of one session (the state machine's or the supervisor's budget), and what it
    may be: the plant's integral since `base_j`, the faults it saw."""

    def __init__(self, plant, t_ms):
        self.base_j = plant.emitted_j
        self.t_ms = t_ms
        self.factor = max(1.0, plant.light_factor)
        self.calibrated = plant.light_factor == 1.0 and not plant.enable_stuck
        self.stuck = plant.enable_stuck
        self.bug = False
        self.late_ms = 0

    def mj(self, plant):
        return (plant.emitted_j - self.base_j) * 1000

    def saw(self, plant, bug, late_ms):
        self.factor = max(self.factor, plant.light_factor)
        self.calibrated = self.calibrated and plant.light_factor == 1.0 and not plant.enable_stuck
        self.stuck = self.stuck or plant.enable_stuck
        self.bug = self.bug or bug
        self.late_ms = max(self.late_ms, late_ms)


class PlantTruth:
    """The oracle's checks against a Plant's physical truth (tests/firmware/plant.py): the light
    it emitted, and (where it reads its own heatsink) the heatsink's true temperature."""

    def __init__(self, oracle):
        self.oracle = oracle
        rig = oracle.rig
        self.hw = plant = rig.hw
        board = rig.board
        self.period_ms = board["loop_ms"]
        self.timing, self.thermal = board["timing"], board["thermal"]
        self.t_ms = -self.period_ms  # the last tick's time since the first's
        self.ctl = None  # the state machine's session: arm to the next arm
        self.budget = Account(plant, 0)  # the supervisor's: from boot to a new budget
        self.dark_arm_ms = None  # the first arm press seen in the dark since the light went off
        self.light_was = plant.enable  # the enable driven last tick
        self.light_kind = None  # a light factor the power monitor must see
        self.lit_ticks = 0
        self.factor_was = plant.light_factor
        monitor = board.get("power_monitor")
        self.monitor_ticks = (2 * max(1, monitor["window_ms"] // self.period_ms) + 2
                              if monitor else None)
        self.runaway = RunawayOracle(self.thermal)
        self.frozen_was = plant.frozen_uv
        self.shutdown_c = self.thermal["shutdown_c"]
        self.set_treatment(rig.app.treatment)

    def set_treatment(self, t):
        """The treatment's figures the bounds use (again after a new selection)."""
        plant = self.hw
        self.t = t
        if t is None:
            return
        self.cal_peak_w = plant.calibration.watts(t.duty_u16)
        self.gated = bool(t.pulse_hz and not t.gate_period_ms)
        self.pulse_mj = (1000.0 / t.pulse_hz * t.gate_duty_u16 / 65536
                         * self.cal_peak_w) if self.gated else 0.0
        self.half_tick_mj = t.power_uw_steps[DERATE_STEPS] * self.period_ms / 2e6
        self.budget_mj = budget_mj(self.oracle.spec.board, t)
        # A frozen sensor lets the true heatsink pass shutdown_c by stuck_s + 1 s of heat.
        heat_w = plant.heat_w_at(t.duty_u16)
        stuck_j = (heat_w * (self.thermal["stuck_s"] + 1)
                   + heat_w * plant._r_junction * plant._c_junction)
        self.stuck_margin_c = stuck_j / plant._c_heatsink

    def diode_changed(self):
        """The harness changed the diode's light factor: a diode 20 % off or more owes an
        OUTPUT_POWER_DEVIATION within two power-monitor windows of lit ticks."""
        factor = self.hw.light_factor
        if abs(factor - 1.0) < 0.2:
            # The latest factor is the diode's: one set at the same instant as an aged or
            # overdriven one replaces it, and a diode 5 % off owes no OUTPUT_POWER_DEVIATION.
            self.light_kind = None
        elif self.monitor_ticks is not None:
            self.light_kind, self.lit_ticks = factor, 0

    def check(self, dt, state, state_was, arm, late_ms, bad):
        plant, oracle = self.hw, self.oracle
        app = oracle.rig.app
        c, sup = app.controller, app.supervisor
        self.t_ms += dt
        t_ms = self.t_ms
        if self.t is not app.treatment:
            self.set_treatment(app.treatment)
        lv = plant.levels
        lit = plant.lit()
        if lit:
            missing = [why for why, no in (
                ("key off", not lv["key_on"]), ("interlock open", not lv["interlock_closed"]),
                ("e-stop pressed", lv["estop_pressed"]),
                ("pedal not pressed on both contacts",
                 not lv["footswitch_no_closed"] or lv["footswitch_nc_closed"]),
                ("state %s" % state, state != "EMITTING")) if no]
            if missing:
                bad.append("light with %s" % ", ".join(missing))
            if plant.reading_from_heatsink:
                limit = self.shutdown_c + HEATSINK_EPS_C
                if plant.frozen_uv is not None:
                    limit += self.stuck_margin_c
                if plant.sensed_c >= limit:
                    bad.append("light with the true heatsink at %.2f C (limit %.2f C)"
                               % (plant.sensed_c, limit))
        light_was, self.light_was = self.light_was, plant.enable
        if self.t is not None:
            self._sessions(t_ms, state, state_was, arm, light_was, lit, late_ms, bad)
        self._diode(c, sup, lit, bad)
        if plant.reading_from_heatsink:
            self._runaway(t_ms, state, c, bad)

    def _sessions(self, t_ms, state, state_was, arm, light_was, lit, late_ms, bad):
        plant, oracle, t = self.hw, self.oracle, self.t
        app = oracle.rig.app
        if state == "READY" and state_was != "READY":
            self.ctl = Account(plant, t_ms)
        # The supervisor's budget sessions, as the contract defines them.
        if arm and not light_was and self.dark_arm_ms is None:
            self.dark_arm_ms = t_ms
        if plant.enable and not light_was:
            if self.dark_arm_ms is not None and \
                    t_ms - self.dark_arm_ms >= self.timing["emission_delay_ms"]:
                self.budget = Account(plant, t_ms)
                oracle.count_base = app.dosimeter.energy_mj
            self.dark_arm_ms = None
        elif plant.enable:
            self.dark_arm_ms = None
        for account in (self.ctl, self.budget):
            if account is not None:
                account.saw(plant, oracle.dose_bug, late_ms)
        peak_w = self.cal_peak_w
        ctl = self.ctl
        if ctl is not None and not ctl.bug:
            bound = ctl.factor * (t.target_mj + self._extra_mj(ctl, peak_w)
                                  + self.half_tick_mj + self.pulse_mj) + COUNT_TOLERANCE_MJ
            if ctl.mj(plant) > bound:
                bad.append("the session since %.2f s emitted %.1f mJ: beyond the target %d mJ "
                           "+ its bound (%.1f mJ)" % (ctl.t_ms / 1000, ctl.mj(plant),
                                                       t.target_mj, bound))
        budget = self.budget
        bound = budget.factor * (self.budget_mj + self._extra_mj(budget, peak_w)
                                 + self.period_ms * peak_w) + COUNT_TOLERANCE_MJ
        if budget.mj(plant) > bound:
            bad.append("the budget session since %.2f s emitted %.1f mJ: beyond the "
                       "supervisor's budget %d mJ + a tick (%.1f mJ)"
                       % (budget.t_ms / 1000, budget.mj(plant), self.budget_mj, bound))
        # The count is the light that went out (to 2 mJ; hardware-gated pulses: never less, at
        # most 1 % more), once the light is off, while the diode is its calibrated self.
        if ctl is not None and ctl.calibrated and not lit:
            true_mj, counted = ctl.mj(plant), app.dosimeter.energy_mj
            low = true_mj - COUNT_TOLERANCE_MJ
            high = true_mj * (1.01 if self.gated else 1.0) + COUNT_TOLERANCE_MJ
            if not low <= counted <= high:
                bad.append("the firmware counted %d mJ where %.1f mJ went out"
                           % (counted, true_mj))

    def _extra_mj(self, account, peak_w):
        """Light beyond the count's own bound: late ticks, and a stuck enable under a hardware
        gate until its bound (the peak instead of the average)."""
        stuck = 2 * self.period_ms if account.stuck and self.gated else 0
        return (account.late_ms + stuck) * peak_w

    def _diode(self, c, sup, lit, bad):
        """A diode 30 % off: two windows of lit ticks."""
        if self.light_kind is None:
            return
        if c.fault_code in ("OUTPUT_POWER_DEVIATION", "LIGHT_OVER_LIMIT") or \
                sup.trip == "LIGHT_OVER_LIMIT":
            self.light_kind = None
        elif lit:
            self.lit_ticks += 1
            if self.lit_ticks > self.monitor_ticks:
                bad.append("the diode's light is %.2f times its calibration and %d lit ticks "
                           "later no OUTPUT_POWER_DEVIATION" % (self.light_kind, self.lit_ticks))

    def _runaway(self, t_ms, state, c, bad):
        plant, t = self.hw, self.t
        if plant.frozen_uv is not None:
            if self.frozen_was is None:
                self.runaway.forget()  # a frozen reading is no history
            self.frozen_was = plant.frozen_uv
            return
        self.frozen_was = None
        heat = self.oracle.heat_was  # (this tick's, set by _monitors)
        step = c.thermal.derate_step
        runaway = self.runaway
        runaway.tick(t_ms, plant.sensed_c, t.heat_uw_steps[step] / 1e6 if heat and t else 0.0,
                     heat)
        if runaway.due_ms is not None:
            if state == "FAULT":
                runaway.due_ms = None
            elif t_ms > runaway.due_ms:
                bad.append("the heatsink rose %.2f C beyond what the heat given can explain, "
                           "and no fault %d ms later" % (runaway.excess_c, ORACLE_DEADLINE_MS))
