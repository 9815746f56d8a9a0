"""Random operators, random wiring faults, random heatsinks: a hypothesis state machine drives the
real App on a fake hardware object (tests/firmware/support.py) in virtual time, on the sim board
and on a "quick" one (the shortest timings a board file may set), and checks after EVERY tick
(every rule advances time through `_tick`):

- EMITTING, hence emission, implies key on, interlock closed, no e-stop, the emission delay
  elapsed since the last READY entry, the footswitch seen released (both contacts) in READY after
  that entry and pressed now on both contacts for at least the debounce time, no latched fault,
  a valid reading below shutdown, and more than half a tick's energy left at the current power;
- for these CW treatments the enable line is on exactly when the state is EMITTING and the duty
  at the current derate step is not zero: the supervisor never has to veto the state machine
  (one known exception at the shutdown voltage, see SHUTDOWN_ROUNDING_UV); no duty without it;
- the delivered dose never exceeds the target by more than half a tick's energy (at full power),
  and the light of a late tick (late_ticks);
- every state change is a row of docs/states.md's transition table and agrees with that tick's
  inputs: the session end reason (exactly one per session), arming on an arm edge with key and
  interlock (dose count cleared), COMPLETE left on an acknowledgement, FAULT left only on reset
  once every cause is gone, the fault code latched and kept;
- key off or interlock open: never READY, EMITTING or PAUSED; e-stop pressed: FAULT;
- READY and PAUSED never outlast their timeouts;
- the emission LED is lit exactly in READY, EMITTING and PAUSED; FAULT sounds the HIGH burst
  pattern unless silenced by ack, for exactly alarm_silence_ms.

The operator also keeps a rhythm (the pedal pressed and released periodically, from a tick to
seconds, at the debounce edge too), and the hardware is the plant of tests/firmware/plant.py
(this test keeps the heatsink reading its own): its enable can stick high (in the same tick as a
key or interlock change too), ticks can apply their outputs late, and the state machine can lose
its dose stop (the dose-count bug). Then also, after every tick:

- once light is off, the dose counted is the light that went out (2 mJ), while the diode is its
  calibrated self; with the dose-count bug the count stays within the supervisor's budget and a
  tick, its own channel (the arm presses during emission it ignores included);
- an enable stuck high is latched (ENABLE_STUCK) within 2 ticks of the first tick after one
  that drove it low (where it can be seen: these treatments are CW);
- a thermistor whose samples are all one value is latched (THERMISTOR_STUCK) within stuck_s + 1 s
  of emission, pauses left out (the quick board's windows are the shortest a board may set).

It supersedes the former test_controller_properties.py, every invariant of which is here."""

import math

import board as board_file
from controller import STATE_NAMES
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from plant import Plant, break_dose_count
from support import Rig, load_board, raw_board
from test_transition_table import transitions
from ticks import ticks_add, ticks_diff


def _quick_board():
    """The sim board with every timing at the low end of what a board file may set (the
    timeouts and the thermal monitors' windows within reach of a sequence; debounce 0: a press
    acts in its first tick)."""
    data = raw_board()
    data["timing"].update({"emission_delay_ms": 1000, "footswitch_mismatch_ms": 10,
                           "footswitch_debounce_ms": 0, "ready_timeout_ms": 5000,
                           "paused_timeout_ms": 10000, "alarm_silence_ms": 10000})
    data["thermal"].update({"stuck_s": 1, "rise_window_s": 2, "runaway_window_s": 2})
    return board_file.validate(data)


BOARDS = {"sim": load_board(), "quick": _quick_board()}
THERMAL = BOARDS["sim"]["thermal"]
PERIOD_MS = BOARDS["sim"]["loop_ms"]
SESSION_STATES = ("READY", "EMITTING", "PAUSED")
SHUTDOWN_ROUNDING_UV = 100  # about 3 m°C at 45 °C on the sim board's divider
ALLOWED = {pair for pair in transitions() if pair[0] != pair[1]}
# CW treatments: (power W, dose J/cm2, area cm2). Short ones so that COMPLETE is reached; a low
# power one whose derated steps fall below the lasing threshold (EMITTING with the gate closed).
TREATMENTS = ((10.0, 1.0, 10.0), (5.0, 1.0, 10.0), (15.0, 2.0, 20.0), (1.0, 1.0, 3.0),
              (10.0, 8.0, 100.0))
BUTTONS = ("arm_pressed", "reset_pressed", "ack_pressed")
SENSOR_FAULT_UV = {"open": 3100000, "short": 0, "range": 2700000}
COUNT_TOLERANCE_MJ = 2
# The pedal's rhythm: press and release times from a tick to 2 s (the quick board's windows),
# on a log scale; tests/test_rhythms.py draws them up to tens of seconds.
RHYTHM_MS = st.floats(1.0, math.log10(2000)).map(lambda x: int(10 ** x))


def _budget_mj(board, treatment):
    """The supervisor's energy budget for a session (supervisor.py): the dose + 1 % + two
    ticks at the diode's maximum."""
    return (treatment.target_mj * 1010 // 1000
            + int(board["diode"]["max_power_w"] * board["loop_ms"] * 2 + 0.5))


class TreatmentMachine(RuleBasedStateMachine):
    # -- set-up ---------------------------------------------------------------------------------

    @initialize(start=st.sampled_from(("cold", "key on", "emitting")),
                spec=st.sampled_from(TREATMENTS),
                temp_c=st.sampled_from((25.0, 38.0, 41.0, 43.5)),
                start_ms=st.sampled_from((0, (1 << 30) - 30000)),  # also across the tick wrap
                board=st.sampled_from(("sim", "quick", "quick")))
    def boot(self, start, spec, temp_c, start_ms, board):
        power_w, dose, area = spec
        self.plant = plant = Plant(BOARDS[board])
        plant.reading_from_heatsink = False  # the heatsink rule below sets the reading
        self.rig = rig = Rig(board=BOARDS[board], power_w=power_w, dose_j_cm2=dose,
                             area_cm2=area, temp_c=temp_c, start_ms=start_ms, hw=plant)
        self.timing = BOARDS[board]["timing"]
        self.treatment = rig.treatment
        self.budget_mj = _budget_mj(BOARDS[board], rig.treatment)
        self.stuck_s = BOARDS[board]["thermal"]["stuck_s"]
        self.bug = False  # the dose-count bug
        self.late_left = 0  # ticks still to apply their outputs late ...
        self.late_ms = 0  # ... by this much
        self.late_max_ms = 0
        self.session_j = None  # the plant's light count when the session began
        self.calibrated = True  # the diode its calibrated self, the enable working, since then
        self.enable_was = False  # the enable driven last tick
        self.stuck_unseen = 0  # ticks an enable stuck high could have been seen, unlatched
        self.frozen_ms = 0  # emission with every sample one value, since one changed
        self.samples_were = None
        self.heat_was = False
        self.temp_c = temp_c
        self.drift_c_per_s = 0.0
        self.sensor_uv = None  # a faulty sensor's reading, or None: the heatsink's
        self.state = rig.state
        self.ready_ms = None  # the tick READY was last entered
        self.released_in_ready = False  # both contacts seen up in READY since that entry
        self.press_ms = None  # the first tick of the current press (both contacts)
        self.mismatch_ms = None  # the first tick of the contacts' current disagreement
        self.levels_were = dict(rig.hw.levels)
        self.fault_code = None
        self.entered_ms = start_ms
        self.ack_ms = None  # the ack that silenced the alarm of the current FAULT
        self.shutdown_uv = int(self.c.thermal.sensor.uv_at(THERMAL["shutdown_c"]))
        self.sessions = self.c.sessions_ended
        self.safe_offs = 0
        if start != "cold":
            rig.hw.levels["key_on"] = True
            self._tick()
        if start == "emitting":
            self.operator_starts()

    @property
    def c(self):
        """The controller now: a failing tick replaces it with a fresh one in FAULT."""
        return self.rig.app.controller

    # -- the one way time passes ----------------------------------------------------------------

    def _tick(self):
        rig, hw = self.rig, self.rig.hw
        if self.sensor_uv is None:
            self.temp_c = min(55.0, max(5.0, self.temp_c + self.drift_c_per_s * PERIOD_MS / 1000))
            rig.set_temp(self.temp_c)
        else:
            hw.thermistor_uv = self.sensor_uv
        if self.late_left:
            self.late_left -= 1
            hw.actuate_delay_ms = self.late_ms
        self.enable_was = hw.enable
        rig.tick()
        hw.actuate_delay_ms = 0
        if self.bug and not getattr(self.c, "dose_count_broken", False):
            break_dose_count(self.c)  # a failed tick made a fresh controller
        self._check(ticks_add(rig.now_ms, -PERIOD_MS))

    def _wait(self, ms):
        for _ in range(ms // PERIOD_MS):
            self._tick()

    # -- the invariants -------------------------------------------------------------------------

    def _check(self, now):
        rig, hw, c = self.rig, self.rig.hw, self.c
        lv = hw.levels
        was, state = self.state, STATE_NAMES[c.state]
        pressed = lv["footswitch_no_closed"] and not lv["footswitch_nc_closed"]
        released = lv["footswitch_nc_closed"] and not lv["footswitch_no_closed"]
        if pressed:
            if self.press_ms is None:
                self.press_ms = now
        else:
            self.press_ms = None
        if pressed or released:
            self.mismatch_ms = None
        elif self.mismatch_ms is None:
            self.mismatch_ms = now
        if was == "READY" and state == "READY" and released:
            self.released_in_ready = True
        edge = {b: lv[b] and not self.levels_were[b] for b in BUTTONS}
        self.levels_were = dict(lv)
        t = self.treatment
        step = c.thermal.derate_step
        energy = rig.app.dosimeter.energy_mj

        if state != was:
            self._check_transition(was, state, now, edge, lv)
            self.state = state
            self.entered_ms = now
            self.ack_ms = None
            if state == "READY":
                self.ready_ms = now
                self.released_in_ready = False
        elif c.sessions_ended != self.sessions:
            raise AssertionError("a session ended without a state change")
        elif state == "FAULT" and edge["reset_pressed"] and c.entered_ms == now:
            # The reset cleared the fault, and a cause only the supervisor sees (its trip: an
            # enable stuck high) latched it again in the same tick: the alarm starts over.
            assert c.fault_code == rig.app.supervisor.trip, (c.fault_code, rig.app.supervisor.trip)
            self.entered_ms, self.ack_ms, self.fault_code = now, None, c.fault_code

        # EMITTING, and so emission, only when everything permits it ...
        if state == "EMITTING":
            assert lv["key_on"] and lv["interlock_closed"] and not lv["estop_pressed"]
            debounce_ms = self.timing["footswitch_debounce_ms"]
            assert pressed and ticks_diff(now, self.press_ms) >= debounce_ms
            assert ticks_diff(now, self.ready_ms) >= self.timing["emission_delay_ms"]
            assert self.released_in_ready, "emitting without a release seen in READY"
            assert c.fault_code is None
            assert c.temp_c is not None and c.temp_c < THERMAL["shutdown_c"]
            half_tick_mj = t.power_uw_steps[step] * PERIOD_MS // 2000000
            assert self.bug or t.target_mj - energy > half_tick_mj, ("EMITTING at the dose",
                                                                     energy, step)
        # ... and the enable line follows the state machine.
        asked = state == "EMITTING" and t.duty_steps[step] != 0
        if asked and not hw.enable and hw.safe_off_calls == self.safe_offs:
            # The one case where the supervisor vetoes the state machine: a reading within a
            # rounding error of the shutdown voltage, where the supervisor's microvolt
            # comparison acts a tick before the thermal monitor's milli-degrees latch OVER_TEMP.
            assert not rig.app.supervisor.permitted
            assert abs(c.thermal.uv - self.shutdown_uv) <= SHUTDOWN_ROUNDING_UV, c.thermal.uv
        else:
            assert hw.enable == asked, (state, hw.enable)
        if hw.duty_u16:
            assert hw.enable, "duty without the gate open"
        if state in ("READY", "PAUSED"):  # the timeouts
            limit_ms = self.timing["ready_timeout_ms" if state == "READY" else "paused_timeout_ms"]
            assert ticks_diff(now, self.entered_ms) < limit_ms, state
        # (+ the light of a late tick, counted to when its outputs took effect)
        late_mj = (t.power_uw * self.late_max_ms + 999999) // 1000000
        if self.bug:  # the supervisor's budget is all that stops the light (its own count)
            tick_mj = (t.power_uw * PERIOD_MS + 999999) // 1000000
            assert energy <= self.budget_mj + tick_mj + late_mj + COUNT_TOLERANCE_MJ, (
                energy, self.budget_mj)
        else:
            assert energy <= t.target_mj + t.power_uw * PERIOD_MS // 2000000 + late_mj, (
                energy, t.target_mj)
        self._check_plant(state, c, energy)
        # The rest of the time: where each state leaves things.
        if not (lv["key_on"] and lv["interlock_closed"]):
            assert state in ("STANDBY", "FAULT", "COMPLETE"), state
        if lv["estop_pressed"]:
            assert state == "FAULT"
        assert hw.led == (state in SESSION_STATES), (state, hw.led)
        if state == "FAULT":
            assert c.fault_code is not None
            if was == "FAULT" and edge["ack_pressed"]:
                self.ack_ms = now
            silenced = self.ack_ms is not None and ticks_diff(now, self.ack_ms) < \
                self.timing["alarm_silence_ms"]
            # A failing tick runs nothing of the controller: it leaves everything off, and the
            # alarm and its silence are brought up to date by the next tick (row T40).
            if hw.safe_off_calls == self.safe_offs:
                assert c.silenced == silenced, (c.silenced, silenced)
                assert c.alarm == 3
                # HIGH: 10 pulses of 120 ms on, 80 ms off, every 5 s from the fault; or silenced.
                t_ms = ticks_diff(now, self.entered_ms) % 5000
                assert hw.buzzer == (not silenced and t_ms < 2000 and t_ms % 200 < 120)
            if was == "FAULT":
                assert c.fault_code == self.fault_code, "the latched code changed"
            self.fault_code = c.fault_code
        else:
            assert c.fault_code is None
        self.safe_offs = hw.safe_off_calls

    def _check_plant(self, state, c, energy):
        """The plant's truth: the count, the enable stuck high, the frozen sensor."""
        plant, sup = self.plant, self.rig.app.supervisor
        self.calibrated = self.calibrated and plant.light_factor == 1.0 and not plant.enable_stuck
        if self.session_j is not None and self.calibrated and not plant.lit():
            true_mj = (plant.emitted_j - self.session_j) * 1000
            assert abs(energy - true_mj) <= COUNT_TOLERANCE_MJ, ("counted", energy, true_mj)
        # Within 2 ticks of the first tick it can be seen (one after the enable was driven low),
        # counting the ticks that read their inputs (a failing one sees nothing).
        if plant.enable_stuck and "ENABLE_STUCK" not in (sup.trip, c.fault_code) and (
                self.stuck_unseen or not self.enable_was):
            self.stuck_unseen += plant.safe_off_calls == self.safe_offs
            assert self.stuck_unseen < 2, ("no ENABLE_STUCK", sup.trip, c.fault_code)
        else:
            self.stuck_unseen = 0
        samples = (plant.thermistor_uv, plant.spread_uv)
        if samples != self.samples_were or plant.spread_uv or c.fault_code == "THERMISTOR_STUCK":
            self.frozen_ms = 0
        elif self.heat_was:
            self.frozen_ms += PERIOD_MS
            assert self.frozen_ms <= (self.stuck_s + 1) * 1000, ("no THERMISTOR_STUCK after",
                                                                  self.frozen_ms)
        self.samples_were = samples
        self.heat_was = state == "EMITTING" and self.treatment.duty_steps[
            c.thermal.derate_step] != 0

    def _check_transition(self, was, state, now, edge, lv):
        c = self.c
        assert (was, state) in ALLOWED, "%s -> %s is no row of docs/states.md" % (was, state)
        ended = c.sessions_ended - self.sessions
        self.sessions = c.sessions_ended
        if was in SESSION_STATES and state not in SESSION_STATES:
            assert ended == 1, (was, state, ended)
            end = c.session_end
            if state == "FAULT":
                assert end == "FAULT"
            elif state == "COMPLETE":
                assert end == "COMPLETE"
            elif end == "KEY_OFF":
                assert not lv["key_on"]
            elif end == "INTERLOCK_OPEN":
                assert lv["key_on"] and not lv["interlock_closed"]
            elif end == "DISARMED":
                assert edge["arm_pressed"] and was in ("READY", "PAUSED")
            elif end == "READY_TIMEOUT":
                assert was == "READY"
                assert ticks_diff(now, self.ready_ms) >= self.timing["ready_timeout_ms"]
            else:
                assert end == "PAUSED_TIMEOUT" and was == "PAUSED", end
        else:
            assert ended == 0, (was, state, ended)
        if state == "READY":
            assert edge["arm_pressed"] and lv["key_on"] and lv["interlock_closed"]
            assert self.rig.app.dosimeter.energy_mj == 0
            self.session_j, self.calibrated = self.plant.emitted_j, True
        if was == "COMPLETE" and state == "STANDBY":
            assert edge["arm_pressed"] or edge["reset_pressed"] or edge["ack_pressed"]
        if was == "FAULT":
            # Left only by reset, and only once every cause is gone.
            assert state == "STANDBY" and edge["reset_pressed"]
            assert not lv["estop_pressed"]
            assert (self.mismatch_ms is None
                    or ticks_diff(now, self.mismatch_ms) < self.timing["footswitch_mismatch_ms"])
            temp = c.temp_c
            assert temp is not None and temp < THERMAL["shutdown_c"] - THERMAL["hysteresis_c"]

    # -- the operator ---------------------------------------------------------------------------

    @rule(name=st.sampled_from(("key_on", "interlock_closed", "estop_pressed")))
    def toggle(self, name):
        levels = self.rig.hw.levels
        levels[name] = not levels[name]
        self._tick()

    @rule(pressed=st.booleans())
    def footswitch(self, pressed):
        """Both contacts, as a working pedal moves them."""
        self.rig.hw.press_footswitch(pressed)
        self._tick()

    @rule(contact=st.sampled_from(("footswitch_no_closed", "footswitch_nc_closed")),
          ticks=st.sampled_from((1, 2, 3, 0)))
    def one_contact(self, contact, ticks):
        """One contact changes alone: back after a few ticks (a bounce), or for good (0: a
        broken wire or a stuck contact)."""
        levels = self.rig.hw.levels
        levels[contact] = not levels[contact]
        self._tick()
        if ticks:
            self._wait((ticks - 1) * PERIOD_MS)
            levels[contact] = not levels[contact]
            self._tick()

    @rule(button=st.sampled_from(BUTTONS), held_ms=st.sampled_from((10, 10, 50, 500)))
    def button(self, button, held_ms):
        levels = self.rig.hw.levels
        levels[button] = True
        self._wait(held_ms)
        levels[button] = False
        self._tick()

    @rule(press_ms=RHYTHM_MS, release_ms=RHYTHM_MS, cycles=st.integers(1, 3),
          edge=st.sampled_from((None, -10, 0, 10)))
    def pedal_rhythm(self, press_ms, release_ms, cycles, edge):
        """The pedal pressed and released periodically (on both contacts), from a tick to
        seconds each way; `edge`: each press that long around the debounce time instead."""
        if edge is not None:
            press_ms = max(PERIOD_MS, self.timing["footswitch_debounce_ms"] + edge)
        hw = self.rig.hw
        for _ in range(cycles):
            hw.press_footswitch(True)
            self._wait(max(press_ms, PERIOD_MS))
            hw.press_footswitch(False)
            self._wait(max(release_ms, PERIOD_MS))

    @rule()
    def operator_starts(self):
        """Key, arm, wait out the delay, press the footswitch: what an operator does."""
        levels = self.rig.hw.levels
        levels["key_on"] = True
        self._tick()
        self.button("arm_pressed", 10)
        self._wait(self.timing["emission_delay_ms"])
        self.rig.hw.press_footswitch()
        self._wait(self.timing["footswitch_debounce_ms"] + PERIOD_MS)

    @rule(ms=st.one_of(st.integers(0, 200), st.integers(0, 1500)))
    def wait(self, ms):
        self._wait(ms)

    @precondition(lambda self: self.state in SESSION_STATES or self.c.silenced)
    @rule(ms=st.sampled_from((5000, 10000, 22000)))
    def wait_long(self, ms):
        """Long enough for the quick board's timeouts and silence, and for 20 s of emission
        with the heatsink warming beyond what the cooling explains (THERMAL_RUNAWAY)."""
        self._wait(ms)

    def _timeout_left(self):
        """Virtual ms from the next tick to the current timeout (READY, PAUSED, silence), if
        one runs and is within reach (the quick board's; not the sim board's minutes)."""
        timing, c = self.timing, self.c
        if self.state == "READY":
            start, limit = self.entered_ms, timing["ready_timeout_ms"]
        elif self.state == "PAUSED":
            start, limit = self.entered_ms, timing["paused_timeout_ms"]
        elif self.state == "FAULT" and c.silenced and self.ack_ms is not None:
            start, limit = self.ack_ms, timing["alarm_silence_ms"]
        else:
            return None
        left = limit - ticks_diff(self.rig.now_ms, start)
        return left if 0 <= left <= 25000 else None

    @precondition(lambda self: self._timeout_left() is not None)
    @rule(offset_ms=st.sampled_from((-10, 0, 10, 500)))
    def wait_for_timeout(self, offset_ms):
        """To just before, at (+10: the tick at the limit) or past the running timeout."""
        self._wait(self._timeout_left() + offset_ms)

    # -- the heatsink, the sensors, the diode, the software -------------------------------------

    @rule(c_per_s=st.sampled_from((-1.0, -0.4, -0.1, 0.0, 0.1, 0.3, 0.45, 0.8)))
    def heatsink(self, c_per_s):
        """The heatsink warms or cools from now on (0.5 C/s over 5 s is the rate limit)."""
        self.drift_c_per_s = c_per_s
        self._tick()

    @rule(kind=st.sampled_from(("jump", "open", "short", "range", "good", "stuck", "aged",
                                "overdriven", "software")))
    def fault(self, kind):
        """A part fails, or (good) the sensor, the diode and its enable are mended."""
        hw = self.plant
        if kind == "jump":  # a reading no heatsink can make in one tick
            self.temp_c += 3.0 if self.temp_c < 30.0 else -3.0
        elif kind in SENSOR_FAULT_UV:
            self.sensor_uv = SENSOR_FAULT_UV[kind]
        elif kind == "good":
            self.sensor_uv = None
            hw.spread_uv = 1000
            hw.set_light_factor(1.0)
            hw.enable_stuck = False
        elif kind == "stuck":  # the ADC returns one value
            hw.spread_uv = 0
        elif kind in ("aged", "overdriven"):
            hw.set_light_factor(0.7 if kind == "aged" else 1.3)
        else:
            hw.fail_next_sense = True
        self._tick()

    @rule(with_it=st.sampled_from((None, "key_on", "interlock_closed")))
    def enable_sticks(self, with_it):
        """The driver's enable input sticks high (a shorted transistor), alone or in the very
        tick the key or the interlock changes (the supervisor's trip and the session's end then
        meet in one tick: the session ends FAULT)."""
        self.plant.stick_enable()
        if with_it is not None:
            levels = self.rig.hw.levels
            levels[with_it] = not levels[with_it]
        self._tick()

    @precondition(lambda self: not self.bug)
    @rule()
    def dose_count_bug(self):
        """The state machine stops seeing its dose (the virtual device's dose_count_bug)."""
        self.bug = True
        break_dose_count(self.c)
        self._tick()

    @rule(late_ms=st.sampled_from((3, 8)), ticks=st.integers(1, 3))
    def late_ticks(self, late_ms, ticks):
        """The next ticks apply their outputs late_ms after their start (within the tick)."""
        self.late_left, self.late_ms = ticks, late_ms
        self.late_max_ms = max(self.late_max_ms, late_ms)
        self._tick()


# Sequences are cheap: 15 times the profile's example count (1500 in make test, about a minute
# on this 2-core machine; 15 000 in make verify).
TreatmentMachine.TestCase.settings = settings(
    max_examples=15 * settings.default.max_examples, stateful_step_count=30)
TestTreatmentMachine = TreatmentMachine.TestCase
