"""Random operators, random wiring faults, random heatsinks: a hypothesis state machine drives the
real App on the plant of tests/firmware/plant.py in virtual time, on the sim board and on the
"quick" one (the shortest timings a board file may set), and checks the safety oracle
(tests/search/oracle.py: the firmware's contract, the monitors' evidence, the plant's light)
after EVERY tick (every rule advances time through `_tick`), the FAULT alarm's burst pattern
included.

The operator turns the key, opens the interlock, presses the e-stop, arm, reset and ack (held
for a tick to half a second), moves the pedal on both contacts or on one (a bounce, or a broken
wire for good), keeps a rhythm (the pedal pressed and released periodically, from a tick to
seconds, at the debounce edge too), and waits: up to the timeouts, just before, at and past
them. The heatsink (a reading of this test's own: the plant does not read its heatsink here)
warms or cools at a drawn rate; the sensor goes open, short, out of range, jumps or freezes;
the diode ages or is overdriven, its driver's enable sticks high (in the same tick as a key or
interlock change too); a tick fails; ticks apply their outputs late; the state machine loses
its dose stop (the dose-count bug).

It supersedes the former test_controller_properties.py, every invariant of which is in the
oracle. make test runs 300 sequences, make verify 15 000 (the settings at the end)."""

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from plant import Plant, break_dose_count
from search.boards import BOARDS, CW_TREATMENTS, SENSOR_FAULT_UV
from search.oracle import SESSION_STATES, Oracle
from support import Rig
from ticks import ticks_diff

PERIOD_MS = BOARDS["sim"]["loop_ms"]
BUTTONS = ("arm_pressed", "reset_pressed", "ack_pressed")
# The pedal's rhythm: press and release times from a tick to 2 s (the quick board's windows),
# on a log scale; tests/test_rhythms.py draws them up to tens of seconds.
RHYTHM_MS = st.floats(1.0, math.log10(2000)).map(lambda x: int(10 ** x))


class TreatmentMachine(RuleBasedStateMachine):
    # -- set-up ---------------------------------------------------------------------------------

    @initialize(start=st.sampled_from(("cold", "key on", "emitting")),
                spec=st.sampled_from(CW_TREATMENTS),
                temp_c=st.sampled_from((25.0, 38.0, 41.0, 43.5)),
                start_ms=st.sampled_from((0, (1 << 30) - 30000)),  # also across the tick wrap
                board=st.sampled_from(("sim", "quick", "quick")))
    def boot(self, start, spec, temp_c, start_ms, board):
        power_w, dose, area = spec
        self.plant = plant = Plant(BOARDS[board])
        plant.reading_from_heatsink = False  # the heatsink rule below sets the reading
        self.rig = rig = Rig(board=BOARDS[board], power_w=power_w, dose_j_cm2=dose,
                             area_cm2=area, temp_c=temp_c, start_ms=start_ms, hw=plant)
        self.oracle = Oracle(rig)
        self.timing = BOARDS[board]["timing"]
        self.bug = False  # the dose-count bug
        self.late_left = 0  # ticks still to apply their outputs late ...
        self.late_ms = 0  # ... by this much
        self.temp_c = temp_c
        self.drift_c_per_s = 0.0
        self.sensor_uv = None  # a faulty sensor's reading, or None: the heatsink's
        if start != "cold":
            rig.hw.levels["key_on"] = True
            self._tick()
        if start == "emitting":
            self.operator_starts()

    @property
    def c(self):
        """The controller now: a failing tick replaces it with a fresh one in FAULT."""
        return self.rig.app.controller

    # -- the one way time passes: a tick, then the oracle ---------------------------------------

    def _tick(self):
        rig, hw = self.rig, self.rig.hw
        if self.sensor_uv is None:
            self.temp_c = min(55.0, max(5.0, self.temp_c + self.drift_c_per_s * PERIOD_MS / 1000))
            rig.set_temp(self.temp_c)
        else:
            hw.thermistor_uv = self.sensor_uv
        late_ms = 0
        if self.late_left:
            self.late_left -= 1
            hw.actuate_delay_ms = late_ms = self.late_ms
        now = rig.now_ms
        rig.tick()
        hw.actuate_delay_ms = 0
        if self.bug and not getattr(self.c, "dose_count_broken", False):
            break_dose_count(self.c)  # a failed tick made a fresh controller
        bad = self.oracle.check(now, late_ms)
        assert not bad, bad

    def _wait(self, ms):
        for _ in range(ms // PERIOD_MS):
            self._tick()

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

    @precondition(lambda self: self.oracle.state in SESSION_STATES or self.c.silenced)
    @rule(ms=st.sampled_from((5000, 10000, 22000)))
    def wait_long(self, ms):
        """Long enough for the quick board's timeouts and silence, and for 20 s of emission
        with the heatsink warming beyond what the cooling explains (THERMAL_RUNAWAY)."""
        self._wait(ms)

    def _timeout_left(self):
        """Virtual ms from the next tick to the current timeout (READY, PAUSED, silence), if
        one runs and is within reach (the quick board's; not the sim board's minutes)."""
        timing, c, oracle = self.timing, self.c, self.oracle
        if oracle.state == "READY":
            start, limit = oracle.entered_ms, timing["ready_timeout_ms"]
        elif oracle.state == "PAUSED":
            start, limit = oracle.entered_ms, timing["paused_timeout_ms"]
        elif oracle.state == "FAULT" and c.silenced and oracle.ack_ms is not None:
            start, limit = oracle.ack_ms, timing["alarm_silence_ms"]
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
            self.oracle.plant.diode_changed()
            hw.enable_stuck = False
        elif kind == "stuck":  # the ADC returns one value
            hw.spread_uv = 0
        elif kind in ("aged", "overdriven"):
            hw.set_light_factor(0.7 if kind == "aged" else 1.3)
            self.oracle.plant.diode_changed()
        else:
            self.oracle.failures_injected = True
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
        self.bug = self.oracle.dose_bug = True
        break_dose_count(self.c)
        self._tick()

    @rule(late_ms=st.sampled_from((3, 8)), ticks=st.integers(1, 3))
    def late_ticks(self, late_ms, ticks):
        """The next ticks apply their outputs late_ms after their start (within the tick)."""
        self.late_left, self.late_ms = ticks, late_ms
        self._tick()


# How many sequences of 30 steps: make test (the default profile, 100) runs 3 times the
# profile's count, 300 (about 15 s of CPU: a sequence ticks some 1300 times, the oracle after
# each); make verify (the verify profile, 1000) 15 times it, 15 000, as make test did before
# issue 18 took its time under 5 minutes.
# The profile loaded (tests/conftest.py), however it was chosen: make verify's, or make test's.
_VERIFY = settings.default.max_examples >= settings.get_profile("verify").max_examples
TreatmentMachine.TestCase.settings = settings(
    max_examples=(15 if _VERIFY else 3) * settings.default.max_examples, stateful_step_count=30)
TestTreatmentMachine = TreatmentMachine.TestCase
