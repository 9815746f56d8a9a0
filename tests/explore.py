"""Exhaustive exploration of the real firmware (issue 6, item 7; issue 14).

Drives the real `App` (firmware/lib/app.py) on `support.FakeHardware` through `support.Rig`, in
virtual time, through every sequence of input symbols up to a depth N (default 8) from every
reachable abstract state, and checks safety invariants after EVERY tick. Two searches: the
inputs' (ALPHABET, one tick a symbol) and the monitors' (MONITOR_ALPHABET, symbols of up to a
hundred ticks: pauses of several lengths and the monitors' faults, default depth 3).

    python tests/explore.py [--depth 8] [--monitor-depth 3] [--board quick|sim] [--progress]

Exit status 0 when no invariant was violated, 1 otherwise, 2 when the exploration itself is
invalid (ExplorationError: its merging assumptions did not hold).

The alphabet
------------
A symbol sets the inputs, then runs exactly one tick of `App.step`; virtual time advances by the
board's `loop_ms`. The treatment is 10 W, 1 J/cm2 over 10 cm2 (10 J: one second of emission).

    wait                     nothing changes: time passes
    footswitch_down, _up     both contacts move together (a working pedal)
    key, interlock, estop    toggle the key switch, the interlock loop, the emergency stop
    arm, reset, ack          the button is down for this tick. Every symbol first lets go of all
                             buttons, so a button stays down only while its symbol repeats:
                             "arm arm" is one press held for two ticks, "arm wait arm" two presses
    temp_normal              the heatsink reads 25 C
    temp_high                it reads shutdown_c + 5 C: THERMISTOR_JUMP after a normal reading,
                             OVER_TEMP when the monitor has no previous reading to jump from
    temp_invalid             the ADC reads the open-sensor rail, 3.1 V (THERMISTOR_OPEN)

Symbols with the same effect on the inputs in a state (footswitch_down while it is down, and
wait) are ticked once and count for all of them.

The monitors' alphabet
----------------------
No operator action may reset a monitor's evidence (issue 14): a window the pedal's rhythm
restarts must be reachable within the search's depth. The monitors' search runs the quick board
(stuck_s 1 s, rise and runaway windows 2 s: 100 and 200 ticks) with the key on from boot and a
3 s treatment (10 W, 3 J/cm2 over 10 cm2), on these symbols:

    wait_90                  90 ticks with the inputs unchanged (emission goes on)
    pause_1, _10, _100       the pedal up for 1, 10 or 100 ticks, then down again
    temp_normal              the heatsink reads 25 C
    temp_stuck               ... and every sample is that one value (a stuck ADC)
    temp_warm                it reads 0.9 C more: a dead fan's rise, abstracted (within the
                             jump and rise limits, beyond what the runaway check allows)
    arm, reset               a one-tick press

Its symbols are dearer (up to 101 ticks), so it runs shallower: at depth 3 a stuck reading
frozen across pauses (wait_90 pause_1 wait_90 from an EMITTING state with the sensor stuck), or
a warm step after a pause (pause_1 temp_warm wait_90), are within reach.

The search
----------
Phase 1, breadth first from boot (the Rig is past BOOT, in STANDBY), over the alphabet plus
`idle`, finds the reachable ABSTRACT states: the state name, the fault code, a supervisor trip,
whether the thermal monitor has a previous reading (a reset restarts its history), the key,
interlock, e-stop and footswitch contacts, the temperature symbol, and in READY whether the
emission delay is over and the footswitch was seen released. `idle` lets time pass with the
inputs unchanged until the abstract state changes (the emission delay, a timeout, the dose, the
end of a silence), at most the board's longest timing: it yields the state after the change and
the state LEAD ticks before it, tagged with the change to come, so that phase 2 also covers the
inputs racing each time-driven change. The first concrete state found for each abstract state is
its representative, reached by a shortest sequence. The button levels and the silence of a FAULT
alarm are not in the abstraction: they are one symbol away.

Phase 2 applies every symbol sequence of length <= N to every representative, breadth first over
all of them together, by symbols left (so each state is expanded once, with the most symbols it
is ever met with). A state is not expanded when one with the same MERGE KEY already was with at
least as many symbols left. Every tick of both phases is checked.

A violation is reported with the input sequence from boot that shows it: the representative's
shortest sequence (`idle(n)`: n ticks of waiting), then the symbols from it, the fewest first
(breadth first); `a=b` stands for symbols with the same effect in that state.

What merging means
------------------
The merge key is the whole state of the Rig: every attribute of every object reachable from it
(found by walking __dict__, __slots__, dicts, lists and arrays; nothing is listed by hand, so
attributes added to the firmware are in the key), except for four reductions:

1. Time shift. Timestamps enter as ages relative to the next tick. Timestamp attributes are found
   by a twin Rig started TWIN_OFFSET_MS later and driven through the same steps to every phase-1
   representative: an int that differs by exactly the offset is a timestamp; any other
   difference is an absolute-time dependence of the firmware (ExplorationError).
2. Time horizon. `ticks_diff` in the firmware modules is wrapped (TimeProbe, in both phases) so
   that each age knows its timestamp attribute (read off the call site) and records what it is
   compared with. Two ages of an attribute are merged when, for each constant its ages are ever
   compared with, both lie on the same side of it for the N ticks the search can still run
   (ages from N + 1 ticks below to one tick above a threshold stay exact). Ages reduced modulo a
   period in alarms.py (tone and burst patterns: the buzzer is not checked) are otherwise
   ignored; an attribute whose ages enter arithmetic (the dosimeters' tick length) stays exact;
   an age compared with another age, reduced modulo elsewhere, not taken from the tick's own
   time, or from an unknown call site in arithmetic turns the reduction off. If phase 2 meets a
   comparison phase 1 had not, it starts again with it.
3. Dead records: the per-tick Inputs and Outputs (rewritten before they are read), sort
   scratch buffers, the outputs FakeHardware records for the invariants, the Rig's event log.
4. History that cannot reach the invariants (KEY_LEAVES_OUT, HISTORY, thermal_key):
   report-only counters (refusals, sessions, the recorder's copies, the status-line clock,
   emitting_ms); and of the thermal monitor's history, what the search's alphabet cannot make
   count. It used to be left out whole, on the argument that a reset restarts it; since no
   operator action may restart a monitor's evidence (issue 14), that argument is gone, and each
   part now has its own:
   - The one-second clock, rings and heat, and the stuck-reading tracking (HISTORY, the rings
     and `_seconds`): the inputs' alphabet makes only the normal reading, readings beyond
     shutdown_c and invalid ones. The rate and runaway checks fire only on a rise to a valid
     reading below shutdown_c (one beyond latches OVER_TEMP or THERMISTOR_JUMP first, an
     invalid one its sensor fault), and the rings hold only the normal reading and hotter
     ones, so no rise to the normal reading exists; FakeHardware's samples are spread, so none
     is ever stuck. Left out there, at any depth. The monitors' search makes stuck and warm
     readings: it keys all of it, the rings in their canonical order (thermal_key).
   - The smoothing average (thermal_key): it sets the thermal level (the alarm's priority
     only) and the derate step (the power, from READY on). Keyed as "cool" outside a session
     when the horizon is shorter than the emission delay (no session can take power from it
     within the horizon), and while the level is NORMAL and the average cannot reach warning_c
     within the horizon even on the alphabet's hottest valid reading; else exactly.

Why reduce at all: with exact snapshots (time shift only) the states multiply by about 5 per
level of depth (2.4 million states within 8 symbols of a single representative, measured);
keeping the smoothing average exact, or the one-second history in the inputs' search, triples
to quadruples the states at depth 5 (measured). Depth 8 from every representative is then out
of reach in CPython.

Reductions 2 and 4 are claims about the firmware, so they are also checked by experiment (the
merge checks): for a sample of merges (up to MERGE_CHECKS per state name) of states whose raw
snapshots differ, the state kept and the state merged into it are run through the same random
continuations, and every tick's observation (state, fault code, enable, duty, LED, supervisor
verdict, dose, session end, invariant verdicts) must be equal; a difference is reported as a
mismatch, and the run as invalid.

Objects that never changed during phase 1 (the board, the treatment, the thermistor grid, the
calibration) are shared instead of copied; that they are unchanged at the end is checked. Keys
are kept as two 64-bit hashes of the flattened state: two different states would be merged only
on a double collision.

"Sequences covered" is exact with respect to the merge key: every input sequence of length <= N
from every representative was either ticked and checked, or led to a state whose key had already
been explored at least as deep. Every symbol applies in every state, so that is
(|alphabet|^(N+1) - 1) / (|alphabet| - 1) sequences per representative.

The invariants (after every tick, on the real objects)
------------------------------------------------------
- emission (hw.enable or hw.duty_u16) only in EMITTING, and never with the key off, the
  interlock open, the e-stop pressed, the footswitch not pressed on both contacts, the
  temperature high or invalid, or a fault latched (FAULT or a supervisor trip); no duty without
  the enable line;
- the supervisor's verdict (app.supervisor.permitted) false whenever any of those holds;
- EMITTING (the state, whatever the supervisor does to the outputs) only with all of those
  conditions met, after the emission delay since READY was entered, with the footswitch seen
  released in READY since then, and more than half a tick's energy left;
- FAULT is left only for STANDBY, on a reset press, with the e-stop released and the temperature
  normal; in FAULT there is a code and it never changes; outside FAULT there is none;
- e-stop pressed implies FAULT; key off or interlock open implies not READY, EMITTING, PAUSED;
- every state change is a row of docs/states.md's transition table
  (tests/test_transition_table.py); READY is entered only on an arm press with key and
  interlock, with the dose count at 0; COMPLETE is left only on arm, reset or ack; a session ends
  exactly when a session state (READY, EMITTING, PAUSED) is left for another state;
- the delivered dose (app.dosimeter.energy_mj) never exceeds the target by more than half a
  tick's energy at full power;
- the emission LED is lit exactly in READY, EMITTING and PAUSED;
- the monitors' search (check_monitors): every sample one value for stuck_s of emission in all
  (the ticks the state machine commanded heat; pauses left out) latches THERMISTOR_STUCK within
  3 ticks more; a step up to the warm reading after runaway_window_s + 1 s at the normal
  temperature, followed by a second of heat without a break, latches a fault within 2 ticks
  more.
"""

import argparse
import inspect
import linecache
import random
import re
import sys
import time
from bisect import bisect_right
from collections import deque
from operator import itemgetter
from pathlib import Path

if __name__ == "__main__":  # as a script: the path set-up tests/conftest.py does for pytest
    _HERE = Path(__file__).resolve().parent
    for _path in (_HERE.parent / "host_tools" / "cpython_stubs", _HERE.parent / "firmware" / "lib",
                  _HERE / "firmware", _HERE):
        if str(_path) not in sys.path:
            sys.path.insert(0, str(_path))

from array import array  # noqa: E402

import ticks  # noqa: E402
from controller import EMITTING, PAUSED, READY, STATE_NAMES  # noqa: E402
from support import Rig  # noqa: E402
from test_state_machine import (  # noqa: E402
    ALLOWED,
    BOARDS,
    SENSOR_FAULT_UV,
    SESSION_STATES,
    TREATMENTS,
)
from thermal import _SMOOTH_SHIFT, NORMAL  # noqa: E402
from thermistor import OK  # noqa: E402
from ticks import ticks_add, ticks_diff  # noqa: E402

ALPHABET = ("wait", "footswitch_down", "footswitch_up", "key", "interlock", "estop", "arm",
            "reset", "ack", "temp_normal", "temp_high", "temp_invalid")
# The monitors' search: time in long strides (emission goes on for 90 ticks; the pedal goes up for
# 1, 10 or 100 ticks and down again), the monitors' faults, and the buttons that restart
# sessions. The quick board's windows: stuck 1 s, rise and runaway 2 s (100 and 200 ticks).
MONITOR_ALPHABET = ("wait_90", "pause_1", "pause_10", "pause_100", "temp_normal", "temp_stuck",
                    "temp_warm", "arm", "reset")
IDLE = "idle"  # phase 1 only
BUTTONS = {"arm": "arm_pressed", "reset": "reset_pressed", "ack": "ack_pressed"}
TOGGLES = {"key": "key_on", "interlock": "interlock_closed", "estop": "estop_pressed"}
TEMPERATURES = ("temp_normal", "temp_high", "temp_invalid", "temp_stuck", "temp_warm")
VALID_READINGS = ("temp_normal", "temp_stuck", "temp_warm")  # below every limit
NORMAL_C = 25.0
HIGH_ABOVE_SHUTDOWN_C = 5.0
# A dead fan, abstracted: the heatsink 0.9 C warmer than normal. Within the jump (2 C) and rise
# (0.5 C/s over 2 s) limits, but beyond what the runaway check allows a rise over its 2 s window
# with the 10 W treatment's heat (0.45 C + 0.3 C of margin from 25 C, the room up to 35 C).
WARM_ABOVE_NORMAL_C = 0.9
SPREAD_UV = 1000  # FakeHardware's: a live sensor's samples differ within a tick
TREATMENT = TREATMENTS[0]  # 10 W, 1 J/cm2, 10 cm2: 10 J, one second of emission
MONITOR_TREATMENT = (10.0, 3.0, 10.0)  # 30 J: 3 s, longer than the windows
LEAD = 3  # near-deadline representatives: this many ticks before a time-driven change
TWIN_OFFSET_MS = (1 << 29) + 12345  # the twin Rig's start: far from the main one's, off the grid
MAX_VIOLATIONS = 20
WITNESS_EVERY = 8  # one key in this many keeps its state, for the merge checks
MERGE_CHECK_EVERY = 8  # one merge into such a key in this many is checked...
MERGE_CHECKS = 150  # ...up to this many per state name, each with...
MERGE_CONTINUATIONS = 3  # ...this many random continuations

# What the merge key leaves out, as (class, attribute); see the module docstring (3 and 4).
KEY_LEAVES_OUT = {
    # dead records: rewritten every tick before anything reads them, or only logged
    ("App", "inputs"), ("App", "outputs"), ("Rig", "lines"), ("Rig", "last_status"),
    ("FakeHardware", "enable"), ("FakeHardware", "duty_u16"), ("FakeHardware", "led"),
    ("FakeHardware", "buzzer"),
    # report-only: counted or copied for the event lines, never read by a decision
    ("Controller", "refusals"), ("Controller", "refusal"), ("Controller", "sessions_ended"),
    ("Controller", "session_end"), ("Recorder", "_refusals"), ("Recorder", "_sessions"),
    ("Recorder", "_thermal_level"), ("Recorder", "_last_status_ms"),
    ("FakeHardware", "safe_off_calls"), ("FakeHardware", "watchdog_feeds"),
    ("Dosimeter", "emitting_ms"),
    # the session's figures for the journal and RTC memory (session.py): written, never read by
    # a decision; RTC memory is read back only by the next boot
    ("Session", "boot"), ("Session", "arm_n"), ("Session", "start_utc_s"),
    ("Session", "checkpoint_due_ms"), ("Session", "stall_mj"), ("Session", "target_mj"),
    ("Session", "peak_uw"), ("Session", "pauses"), ("Session", "derated_ms"),
    ("Session", "measured_mj"), ("Session", "_measured_rest_uj"), ("Session", "_state"),
    ("Session", "measured_last_mj"),
    ("Session", "_at_ms"), ("Session", "_flags"), ("Session", "recalled"),
    ("FakeHardware", "rtc_memory"), ("FakeHardware", "rtc_kept"), ("FakeHardware", "rtc_writes"),
    # keyed in a canonical form instead (thermal_key)
    ("ThermalMonitor", "_temp_ring"), ("ThermalMonitor", "_heat_ring"),
    ("ThermalMonitor", "_seconds"), ("ThermalMonitor", "_smooth_mc"),
}
# The thermal monitor's evidence over time: its one-second clock and heat, and its stuck-reading
# tracking (today's names and those of issue 14's fix). The inputs' search leaves it out of the
# key; the monitors' search keys it (see the module docstring).
HISTORY = {("ThermalMonitor", name) for name in (
    "_next_second_ms", "_heat_uw", "_emitting_seconds", "_emitting", "_stuck_since_ms",
    "_stuck_low", "_stuck_high", "_last_ms", "_stuck_uv", "_stuck_ms")}


def thermal_key(monitor, snaps):
    """What the merge key holds of the thermal monitor beyond its plain attributes:

    - the smoothed temperature, as "cool" where its value cannot show within the search's horizon:
      while the level is NORMAL and the smoothing cannot reach warning_c even if every reading
      were the hottest valid one of the alphabet (it then gives NORMAL and all of the power
      throughout), or outside a session (READY, EMITTING, PAUSED) with a horizon shorter than
      the emission delay (no power is taken from the derate step before a session's delay is
      over; the level meanwhile sets only the alarm's priority, and the buzzer is not checked);
      else exactly;
    - in the monitors' search, the one-second rings as its checks read them: from the oldest
      reading to the newest, and how many readings there are up to the rings' size (the checks
      index the rings only relative to the newest slot, `_seconds % size`, and compare the count
      only with windows smaller than the size)."""
    smooth = monitor._smooth_mc
    c, ticks = snaps.root.app.controller, snaps.horizon
    if c.state not in (READY, EMITTING, PAUSED) and \
            ticks * snaps.period_ms < c.emission_delay_ms:
        smooth = "cool"
    elif monitor.level == NORMAL:
        hottest = snaps.hottest_mc
        # Each tick moves the average 1/2**_SMOOTH_SHIFT of the way, rounded up by < 1 mC.
        reach = hottest - (hottest - smooth) * (1 - 2.0 ** -_SMOOTH_SHIFT) ** ticks + ticks
        if max(smooth, min(reach, hottest + (1 << _SMOOTH_SHIFT))) < monitor.warning_mc:
            smooth = "cool"
    if not snaps.monitors:
        return smooth
    temps, heats, count = monitor._temp_ring, monitor._heat_ring, monitor._seconds
    size = len(temps)
    first = count % size
    order = [(first + i) % size for i in range(size)]
    return (smooth, min(count, size), tuple(temps[i] for i in order),
            tuple(heats[i] for i in order))


# Objects keyed with a canonical form of some of their attributes (left out above) appended.
KEY_CANONICAL = {"ThermalMonitor": thermal_key}


class ExplorationError(Exception):
    """The exploration itself is invalid (not a firmware invariant violation)."""


# -- the time probe: what the firmware does with ages -------------------------------------------


class TimeProbe:
    """Wraps `ticks_diff` in the firmware modules. Its results are ages that know which
    timestamp attribute they come from (read off the call site: `ticks_diff(now,
    self.entered_ms)`, or a local assigned from `self.x` in the same function) and record what
    they are compared with (thresholds), reduced modulo, or used in arithmetic."""

    MODULO_OK = ("alarms",)  # the tone and burst patterns: the buzzer is not checked

    def __init__(self):
        self.thresholds = {}  # (class, attribute), or None for an unknown call site -> {ms}
        self.arithmetic = set()  # attributes whose ages enter arithmetic: kept exact
        self.modulo = {}  # module -> {moduli}
        self.hazards = []  # reasons to keep every age exact
        self.now_ms = None  # the time of the tick running
        self._sites = {}
        self._sources = {}
        self._patched = []

    def signature(self):
        return (sorted((str(k), sorted(v)) for k, v in self.thresholds.items()),
                sorted(map(str, self.arithmetic)), list(self.hazards))

    def declare(self, attribute, threshold_ms):
        """A comparison made outside the firmware (by the invariants)."""
        self.thresholds.setdefault(attribute, set()).add(threshold_ms)

    def install(self):
        global _PROBE
        _PROBE = self
        original, site = ticks.ticks_diff, self._site

        def tracked_diff(end, start):
            if end != self.now_ms:
                self.hazard("an age not taken from the tick's time")
            age = _Age(original(end, start))
            age.site = site(sys._getframe(1))
            return age

        lib = Path(ticks.__file__).resolve().parent
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if (path and module is not ticks and getattr(module, "ticks_diff", None) is original
                    and Path(path).resolve().parent == lib):
                module.ticks_diff = tracked_diff
                self._patched.append(module)

    def uninstall(self):
        global _PROBE
        for module in self._patched:
            module.ticks_diff = ticks.ticks_diff
        self._patched = []
        _PROBE = None

    def hazard(self, why):
        if why not in self.hazards:
            self.hazards.append(why)

    def _site(self, frame):
        where = (frame.f_code, frame.f_lineno)
        found = self._sites.get(where, _MISSING)
        if found is _MISSING:
            found = None
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            match = _DIFF_CALL.search(line)
            owner = frame.f_locals.get("self")
            if match and owner is not None:
                start = match.group(1)
                if start.startswith("self."):
                    found = (type(owner).__name__, start[5:])
                else:  # a local: `since = self._mismatch_since_ms` earlier in the function
                    source = self._sources.get(frame.f_code)
                    if source is None:
                        source = self._sources[frame.f_code] = inspect.getsource(frame.f_code)
                    local = re.search(r"\b%s\s*=\s*self\.(\w+)\s*$" % re.escape(start), source,
                                      re.M)
                    if local:
                        found = (type(owner).__name__, local.group(1))
            self._sites[where] = found
        return found


_PROBE = None
_DIFF_CALL = re.compile(r"ticks_diff\(\s*[^,()]+,\s*([\w.]+)\s*\)")


class _Age(int):
    """An age from the probed ticks_diff (see TimeProbe): an int that reports its uses."""

    __hash__ = int.__hash__

    def _compare(self, other):
        probe = _PROBE
        if probe is None:
            return
        if isinstance(other, _Age):
            probe.hazard("two ages compared")
        elif isinstance(other, int):
            probe.thresholds.setdefault(self.site, set()).add(int(other))
        else:
            probe.hazard("an age compared with %r" % (other,))

    def __ge__(self, other):
        self._compare(other)
        return int(self) >= other

    def __gt__(self, other):
        self._compare(other)
        return int(self) > other

    def __le__(self, other):
        self._compare(other)
        return int(self) <= other

    def __lt__(self, other):
        self._compare(other)
        return int(self) < other

    def __eq__(self, other):
        self._compare(other)
        return int(self) == other

    def __ne__(self, other):
        self._compare(other)
        return int(self) != other

    def __bool__(self):
        self._compare(0)
        return int(self) != 0

    def __mod__(self, other):
        probe = _PROBE
        if probe is not None:
            module = sys._getframe(1).f_globals.get("__name__")
            probe.modulo.setdefault(module, set()).add(other)
            if module not in TimeProbe.MODULO_OK:
                probe.hazard("an age reduced modulo %r in %s" % (other, module))
        return int(self) % other

    def _arith(self):
        if _PROBE is not None:
            if self.site is None:
                _PROBE.hazard("arithmetic on an age from an unknown call site")
            _PROBE.arithmetic.add(self.site)
        return int(self)

    def __add__(self, other):
        return self._arith() + other

    __radd__ = __add__

    def __sub__(self, other):
        return self._arith() - other

    def __rsub__(self, other):
        return other - self._arith()

    def __mul__(self, other):
        return self._arith() * other

    __rmul__ = __mul__

    def __floordiv__(self, other):
        return self._arith() // other

    def __rfloordiv__(self, other):
        return other // self._arith()

    def __truediv__(self, other):
        return self._arith() / other

    def __rshift__(self, other):
        return self._arith() >> other

    def __lshift__(self, other):
        return self._arith() << other

    def __neg__(self):
        return -self._arith()

    def __abs__(self):
        return abs(self._arith())


# -- snapshots: the whole Rig, saved, restored and keyed ----------------------------------------

_DICT, _SLOTS, _PLAIN_DICT, _LIST, _ARRAY, _TUPLE = range(6)
_LEAVES = (int, float, str, bool, bytes, type(None), complex)
_MISSING = object()
_WALKABLE = {dict: True, list: True, tuple: True, array: True}


def _slots(cls):
    names = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names.extend((slots,) if isinstance(slots, str) else slots)
    return tuple(names)


def _walkable_type(t):
    """Instances of t are walked into (their attributes are state), not compared as values."""
    walk = _WALKABLE.get(t)
    if walk is None:
        walk = _WALKABLE[t] = (not issubclass(t, _LEAVES) and t.__module__ != "builtins"
                               and ("__dict__" in dir(t) or bool(_slots(t))))
    return walk


class Snapshots:
    """Saves and restores every mutable object reachable from a Rig (in place: the live objects
    are reused by every branch), and computes the merge key of the current state.

    The walk is compiled into a program: the objects in the order of the walk, each with a plan
    for its shape (class, attribute names, value types). A take runs the program, checking that
    every object still refers to the same objects, and compiles it again when not."""

    def __init__(self, period_ms, monitors=False, hottest_mc=0):
        self.period_ms = period_ms
        self.frozen = {}  # id -> (index, object): shared, never copied
        self.timestamps = set()  # (class, attribute) of the timestamp attributes
        self.monitors = monitors  # key the thermal history (the monitors' search)
        self.left_out = set(KEY_LEAVES_OUT) | (set() if monitors else HISTORY)
        self.hottest_mc = hottest_mc  # the hottest valid reading the alphabet makes
        self.horizon = 0
        self.root = None  # the Rig keyed
        self._probe = None  # None: exact ages
        self._classes = {}
        self._plans = {}
        self._idents = {}
        self._root = self._program = None

    def configure(self, frozen, timestamps):
        self.frozen = {id(obj): (i, obj) for i, obj in enumerate(frozen)}
        self.timestamps = set(timestamps)
        self._plans, self._program = {}, None

    def set_horizon(self, probe, ticks):
        """Age classes from what the probe saw, valid for `ticks` more ticks."""
        self._classes = {}
        self._probe, self.horizon = probe, ticks

    def _windows(self, attribute):
        """The age windows kept exact for `attribute` (sorted starts, ends), or None: exact."""
        probe = self._probe
        if probe is None or probe.hazards or attribute in probe.arithmetic:
            return None
        thresholds = probe.thresholds.get(attribute, set()) | probe.thresholds.get(None, set())
        merged = []
        for lo, hi in sorted((c - (self.horizon + 1) * self.period_ms, c + self.period_ms)
                             for c in thresholds):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [lo for lo, _ in merged], [hi for _, hi in merged]

    def age_class(self, attribute, age):
        windows = self._classes.get(attribute, _MISSING)
        if windows is _MISSING:
            windows = self._classes[attribute] = self._windows(attribute)
        if windows is None:
            return age
        starts, ends = windows
        i = bisect_right(starts, age) - 1
        if i >= 0 and age <= ends[i]:
            return age
        return ("gap", i)  # between two windows: on the same side of every threshold

    def take(self, rig, with_key=True):
        """(saved, key): what restore() needs, and the merge key (None unless `with_key`), a
        pair of 64-bit hashes of the flattened state."""
        if self._root is not rig or self._program is None:
            self._compile(rig)
        self.root = rig
        result = self._run(rig.now_ms, with_key)
        if result is None:
            self._compile(rig)
            result = self._run(rig.now_ms, with_key)
        return result

    @staticmethod
    def restore(saved):
        for obj, kind, (names, values) in saved:
            if kind == _DICT:
                d = obj.__dict__
                if len(d) != len(names):
                    d.clear()
                d.update(zip(names, values, strict=True))
            elif kind == _ARRAY:
                obj[:] = names  # (an array's copy)
            elif kind == _PLAIN_DICT:
                if len(obj) != len(names):
                    obj.clear()
                obj.update(zip(names, values, strict=True))
            elif kind == _LIST:
                obj[:] = values
            else:
                for name, value in zip(names, values, strict=True):
                    if value is _MISSING:
                        if hasattr(obj, name):
                            delattr(obj, name)
                    else:
                        setattr(obj, name, value)

    def _run(self, now, with_key):
        saved = []
        key = [self._signature] if with_key else None
        age_class = self.age_class
        for obj, kind, plan, expected, keyed, canonical in self._program:
            if kind == _ARRAY:
                copy = obj[:]
                saved.append((obj, _ARRAY, (copy, None)))
                if keyed and with_key:
                    key.append(copy.tobytes())
                continue
            ident, names, types, refs_at, kept, stamps = plan
            if kind in (_DICT, _PLAIN_DICT):
                d = obj.__dict__ if kind == _DICT else obj
                if len(d) != len(names) or tuple(d) != names:
                    return None
                values = tuple(d.values())
            elif kind == _SLOTS:
                values = tuple([getattr(obj, n, _MISSING) for n in names])
            else:
                values = tuple(obj)
                if len(values) != names:
                    return None
            shape = tuple(map(type, values))
            if shape != types:
                # A value changed type (None <-> int, say): the plan of the new shape will do
                # unless the attributes that refer to objects changed.
                plan = self._plan(type(obj), names, shape)
                if plan[3] != refs_at:
                    return None
                ident, names, types, refs_at, kept, stamps = plan[:6]
            for i, ref in expected:
                if values[i] is not ref:
                    return None
            if kind != _TUPLE:
                saved.append((obj, kind, (names, values)))
            if keyed and with_key:
                key.append(ident)
                if kept is not None:
                    key.append(kept(values))
                for i, attribute in stamps:
                    key.append(age_class(attribute, ticks_diff(now, values[i])))
                if canonical is not None:
                    key.append(canonical(obj, self))
        if not with_key:
            return saved, None
        flat = tuple(key)
        return saved, (hash(flat), hash(flat[::-1]))

    def _compile(self, rig):
        self._root = rig
        self._program = program = []
        index = {}
        links = []

        def visit(obj, keyed):
            index[id(obj)] = len(index)
            t = type(obj)
            if t is array:
                program.append((obj, _ARRAY, None, (), keyed, None))
                return
            d = obj if t is dict else getattr(obj, "__dict__", None)
            if d is not None:
                kind = _PLAIN_DICT if t is dict else _DICT
                names, values = tuple(d), tuple(d.values())
            elif t is list or t is tuple:
                kind, names, values = (_LIST if t is list else _TUPLE), len(obj), tuple(obj)
            else:
                kind, names = _SLOTS, _slots(t)
                values = tuple([getattr(obj, n, _MISSING) for n in names])
            plan = self._plan(t, names, tuple(map(type, values)))
            refs_at, keyed_refs = plan[3], plan[6]
            program.append((obj, kind, plan[:6], tuple((i, values[i]) for i in refs_at), keyed,
                            KEY_CANONICAL.get(t.__name__)))
            positions = []
            for i, use in zip(refs_at, keyed_refs, strict=True):
                v = values[i]
                shared = self.frozen.get(id(v))
                if shared is not None:
                    positions.append(-1 - shared[0])
                elif id(v) in index:
                    positions.append(index[id(v)])
                else:
                    positions.append(len(index))
                    visit(v, keyed and use)
            links.append((plan[0], tuple(positions)))

        visit(rig, True)
        # Which object refers to which: part of every key made with this program.
        self._signature = hash(tuple(links))

    def _plan(self, t, names, types):
        """(id, names, types, indices of references, getter of the values kept, [(index,
        attribute)] of timestamps, whether each reference is keyed) for objects of a shape."""
        plan = self._plans.get((t, names, types))
        if plan is not None:
            return plan
        owner = None if t in (dict, list, tuple) else t.__name__
        refs_at, keyed_refs, kept, stamps = [], [], [], []
        for i, vt in enumerate(types):
            name = names[i] if isinstance(names, tuple) else i
            attribute = (owner, name)
            use = attribute not in self.left_out and "scratch" not in str(name)
            if issubclass(vt, _LEAVES):
                if use and vt is not bool and issubclass(vt, int) and (
                        attribute in self.timestamps):
                    stamps.append((i, attribute))
                elif use:
                    kept.append(i)
            elif _walkable_type(vt):
                refs_at.append(i)
                keyed_refs.append(use)
            # else: functions, bound methods: wiring, not state
        getter = (None if not kept else (lambda v, i=kept[0]: v[i]) if len(kept) == 1
                  else itemgetter(*kept))
        # Shapes that differ only in what the key leaves out are one shape to the key.
        ident = self._idents.setdefault(
            (t, names, tuple(vt if i in kept else None for i, vt in enumerate(types))),
            len(self._idents))
        plan = self._plans[(t, names, types)] = (ident, names, types, tuple(refs_at), getter,
                                                 tuple(stamps), tuple(keyed_refs))
        return plan


def leaves(obj, path="rig", owner_attr=None, out=None, seen=None):
    """{path: ((class, attribute), value)} of every leaf reachable from obj (arrays as tuples):
    what the twin comparison looks at."""
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if isinstance(obj, _LEAVES):
        out[path] = (owner_attr, obj)
        return out
    if id(obj) in seen or not _walkable_type(type(obj)):
        return out
    seen.add(id(obj))
    if type(obj) is array:
        out[path] = (owner_attr, tuple(obj))
    elif type(obj) is dict:
        for k, v in obj.items():
            leaves(v, "%s[%r]" % (path, k), (None, k), out, seen)
    elif type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            leaves(v, "%s[%d]" % (path, i), (None, i), out, seen)
    else:
        owner = type(obj).__name__
        d = getattr(obj, "__dict__", None)
        items = d.items() if d is not None else (
            (n, getattr(obj, n, None)) for n in _slots(type(obj)))
        for k, v in items:
            leaves(v, "%s.%s" % (path, k), (owner, k), out, seen)
    return out


def _content(obj):
    """One object's own state, comparable (identity for the objects it refers to)."""
    if type(obj) is array:
        return obj.tobytes()
    if type(obj) in (dict, list, tuple):
        container = obj
    else:
        d = getattr(obj, "__dict__", None)
        container = d if d is not None else [getattr(obj, n, _MISSING) for n in _slots(type(obj))]
    items = container.items() if type(container) is dict else enumerate(container)
    return tuple((k, v if isinstance(v, _LEAVES) else
                  v.tobytes() if type(v) is array else ("id", id(v))) for k, v in items)


# -- the world, the symbols and the invariants --------------------------------------------------


class Observer:
    """Lives on the Rig (saved, restored and keyed with it): what the invariants remember
    between ticks."""

    def __init__(self):
        self.ready_ms = None  # the tick READY was last entered
        self.released_in_ready = False  # both contacts seen up in READY since then
        self.heat_was = False  # the state machine commanded heat last tick
        self.frozen_ms = 0  # emission with the samples frozen, since they froze or latched
        self.normal_ms = 0  # the reading at the normal temperature since, up to RUNAWAY_SEEN_MS
        self.warm_ms = None  # heat without a break since the reading stepped up to warm


class World:
    """The board, the treatment and the temperature readings of one exploration. A reading is
    (microvolts, spread of the samples around it): temp_stuck is the normal temperature with
    every sample one value."""

    def __init__(self, board_name, treatment=TREATMENT, key_on=False):
        self.board_name = board_name
        self.board = BOARDS[board_name]
        self.treatment = treatment
        self.key_on = key_on
        self.period_ms = self.board["loop_ms"]
        self.timing = self.board["timing"]
        self.thermal = self.board["thermal"]
        self.stuck_ms = int(self.thermal["stuck_s"] * 1000)
        self.monitors = False  # check the monitors' invariants too (check_monitors)
        self.readings = self.reading_name = None

    def new_rig(self, start_ms=0):
        power_w, dose, area = self.treatment
        rig = Rig(board=self.board, power_w=power_w, dose_j_cm2=dose, area_cm2=area,
                  temp_c=NORMAL_C, start_ms=start_ms)
        if self.key_on:
            rig.hw.levels["key_on"] = True
            rig.tick()
        rig.observer = Observer()
        quiet(rig)
        sensor = rig.app.controller.thermal.sensor
        high_c = self.thermal["shutdown_c"] + HIGH_ABOVE_SHUTDOWN_C
        normal_uv = int(sensor.uv_at(NORMAL_C))
        self.readings = {"temp_normal": (normal_uv, SPREAD_UV),
                         "temp_high": (int(sensor.uv_at(high_c)), SPREAD_UV),
                         "temp_invalid": (SENSOR_FAULT_UV["open"], SPREAD_UV),
                         "temp_stuck": (normal_uv, 0),
                         "temp_warm": (int(sensor.uv_at(NORMAL_C + WARM_ABOVE_NORMAL_C)),
                                       SPREAD_UV)}
        self.reading_name = {r: name for name, r in self.readings.items()}
        self._sensor = sensor
        return rig

    def hottest_mc(self):
        """The hottest valid reading the alphabet can make (its temperature symbols')."""
        alphabet = MONITOR_ALPHABET if self.monitors else ALPHABET
        sensor = self._sensor
        return max(sensor.temp_mc(self.readings[name][0]) for name in alphabet
                   if name in self.readings and sensor.check(self.readings[name][0]) == OK)


def reading_of(hw):
    return hw.thermistor_uv, hw.spread_uv


def quiet(rig):
    """The Rig keeps every event line, and counts the serial port's bytes: dropped after each
    tick (a log, not state: a line's length depends on its timestamp)."""
    rig.lines.clear()
    rig.last_status = None
    rig.hw.serial_written = 0


def effect(levels, reading, symbol, world):
    """The input levels and thermistor reading after a one-tick `symbol` (a new dict)."""
    new = dict(levels)
    for name in BUTTONS.values():
        new[name] = False
    if symbol in BUTTONS:
        new[BUTTONS[symbol]] = True
    elif symbol in TOGGLES:
        new[TOGGLES[symbol]] = not levels[TOGGLES[symbol]]
    elif symbol in ("footswitch_down", "footswitch_up"):
        down = symbol == "footswitch_down"
        new["footswitch_no_closed"], new["footswitch_nc_closed"] = down, not down
    elif symbol in TEMPERATURES:
        reading = world.readings[symbol]
    return new, reading


def ticks_of(symbol):
    """How many ticks a symbol lasts: wait_N N, pause_N N + 1, the others 1."""
    if symbol.startswith("wait_"):
        return int(symbol[5:])
    if symbol.startswith("pause_"):
        return int(symbol[6:]) + 1
    return 1


def plan(levels, reading, symbol, world):
    """The inputs of each tick of `symbol`: [(levels, reading), ...]. wait_N: N ticks with the
    inputs unchanged; pause_N: the pedal up for N ticks, then down again."""
    if symbol.startswith("wait_"):
        return [effect(levels, reading, "wait", world)] * ticks_of(symbol)
    if symbol.startswith("pause_"):
        up = effect(levels, reading, "footswitch_up", world)
        down = effect(up[0], reading, "footswitch_down", world)
        return [up] + [effect(up[0], reading, "wait", world)] * (ticks_of(symbol) - 2) + [down]
    return [effect(levels, reading, symbol, world)]


def before_tick(rig):
    """What the invariants compare with, read just before a tick."""
    c = rig.app.controller
    return STATE_NAMES[c.state], c.sessions_ended, c.fault_code


def check(rig, was, levels_was, world):
    """The invariants after one tick: a list of violations (empty: all hold). `was` is
    before_tick() of this tick, `levels_was` the input levels of the tick before it."""
    app, hw, obs = rig.app, rig.hw, rig.observer
    c, sup, t = app.controller, app.supervisor, app.treatment
    state_was, sessions_was, code_was = was
    lv = hw.levels
    now = ticks_add(rig.now_ms, -world.period_ms)  # the tick that just ran
    state = STATE_NAMES[c.state]
    bad = []
    temp = world.reading_name.get(reading_of(hw), "other")
    pressed = lv["footswitch_no_closed"] and not lv["footswitch_nc_closed"]
    released = lv["footswitch_nc_closed"] and not lv["footswitch_no_closed"]
    edge = {b: lv[b] and not levels_was[b] for b in BUTTONS.values()}
    trip = getattr(sup, "trip", None)
    unsafe = []
    if not lv["key_on"]:
        unsafe.append("key off")
    if not lv["interlock_closed"]:
        unsafe.append("interlock open")
    if lv["estop_pressed"]:
        unsafe.append("e-stop pressed")
    if not pressed:
        unsafe.append("footswitch not pressed")
    if temp not in VALID_READINGS:
        unsafe.append(temp)
    if state == "FAULT" or c.fault_code is not None:
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
    if sup.permitted and unsafe:
        bad.append("supervisor permits emission with %s" % ", ".join(unsafe))
    if lv["estop_pressed"] and state != "FAULT":
        bad.append("e-stop pressed in %s" % state)
    if not (lv["key_on"] and lv["interlock_closed"]) and state in SESSION_STATES:
        bad.append("%s with the key off or the interlock open" % state)
    if hw.led != (state in SESSION_STATES):
        bad.append("LED %s in %s" % ("on" if hw.led else "off", state))
    energy = app.dosimeter.energy_mj
    if t is not None and energy > t.target_mj + t.power_uw * world.period_ms // 2000000:
        bad.append("dose %d mJ beyond the target %d mJ" % (energy, t.target_mj))
    if state == "FAULT":
        if c.fault_code is None:
            bad.append("FAULT without a code")
        if state_was == "FAULT" and c.fault_code != code_was:
            bad.append("latched code changed %s -> %s" % (code_was, c.fault_code))
    elif c.fault_code is not None:
        bad.append("fault code %s outside FAULT" % c.fault_code)

    # The state change: its row of the table, its session end, what the observer remembers.
    ended = c.sessions_ended - sessions_was
    if state != state_was:
        if (state_was, state) not in ALLOWED:
            bad.append("%s -> %s is no row of docs/states.md" % (state_was, state))
        leaves_session = state_was in SESSION_STATES and state not in SESSION_STATES
        if ended != (1 if leaves_session else 0):
            bad.append("%d sessions ended on %s -> %s" % (ended, state_was, state))
        if state == "READY":
            if not (edge["arm_pressed"] and lv["key_on"] and lv["interlock_closed"]):
                bad.append("READY without an arm press with key and interlock")
            if energy != 0:
                bad.append("READY with %d mJ counted" % energy)
            obs.ready_ms = now
            obs.released_in_ready = False
        if state_was == "COMPLETE" and state == "STANDBY" and not (
                edge["arm_pressed"] or edge["reset_pressed"] or edge["ack_pressed"]):
            bad.append("COMPLETE left without an acknowledgement")
        if state_was == "FAULT":
            if state != "STANDBY" or not edge["reset_pressed"]:
                bad.append("FAULT left for %s without a reset press" % state)
            if lv["estop_pressed"] or temp not in VALID_READINGS:
                bad.append("FAULT left with its cause present (%s)" % ", ".join(unsafe))
    elif ended:
        bad.append("a session ended without a state change")
    if state_was == "READY" and state == "READY" and released:
        obs.released_in_ready = True
    if state == "EMITTING":
        # The state machine itself, not just the light, needs every condition.
        conditions = [u for u in unsafe if not u.startswith("supervisor")]
        if conditions:
            bad.append("EMITTING with %s" % ", ".join(conditions))
        if obs.ready_ms is None or ticks_diff(now, obs.ready_ms) < c.emission_delay_ms:
            bad.append("EMITTING before the emission delay")
        if not obs.released_in_ready:
            bad.append("EMITTING without a release seen in READY")
        if t is not None:
            step = getattr(c.thermal, "derate_step", -1)
            half_tick_mj = t.power_uw_steps[step] * world.period_ms // 2000000
            if t.target_mj - energy <= half_tick_mj:
                bad.append("EMITTING at the dose (%d of %d mJ)" % (energy, t.target_mj))
    if world.monitors:
        check_monitors(rig, state, temp, world, bad)
    return bad


RUNAWAY_SLACK_TICKS = 2  # the one-second check falls on a tick, the heat it sees a tick late
STUCK_SLACK_TICKS = 3  # the samples seen frozen a tick late, the heat a tick late, rounding


def check_monitors(rig, state, temp, world, bad):
    """No pause, arm or reset hides a monitor's evidence:
    - every sample one value (temp_stuck) for stuck_s of emission in all, the ticks the state
      machine commanded heat, pauses left out: THERMISTOR_STUCK;
    - the heatsink stepped up to warm after runaway_window_s + 1 s at the normal temperature,
      then a second of heat without a break: a fault (THERMAL_RUNAWAY: the rise is beyond what
      the heat given and the warmest room allow, whatever the pedal did before)."""
    c, obs, t = rig.app.controller, rig.observer, rig.app.treatment
    period = world.period_ms
    if temp == "temp_stuck" and c.fault_code != "THERMISTOR_STUCK":
        if obs.heat_was:
            obs.frozen_ms += period
            if obs.frozen_ms > world.stuck_ms + STUCK_SLACK_TICKS * period:
                bad.append("the samples frozen for %d ms of emission, no THERMISTOR_STUCK"
                           % obs.frozen_ms)
    else:
        obs.frozen_ms = 0
    seen_ms = (world.thermal["runaway_window_s"] + 1) * 1000
    if temp in ("temp_normal", "temp_stuck"):
        obs.normal_ms = min(obs.normal_ms + period, seen_ms)
        obs.warm_ms = None
    elif temp == "temp_warm":
        if obs.normal_ms >= seen_ms:  # the step up
            obs.warm_ms = 0
        elif obs.warm_ms is not None and (state == "FAULT" or not obs.heat_was):
            obs.warm_ms = None  # a fault latched, or a break in the heat
        elif obs.warm_ms is not None:
            obs.warm_ms += period
            if obs.warm_ms > 1000 + RUNAWAY_SLACK_TICKS * period:
                bad.append("the heatsink stepped up %.1f C and %d ms of heat later no fault"
                           % (WARM_ABOVE_NORMAL_C, obs.warm_ms))
        obs.normal_ms = 0
    else:
        obs.normal_ms, obs.warm_ms = 0, None
    obs.heat_was = state == "EMITTING" and t.duty_steps[c.thermal.derate_step] != 0


def observe(rig, was, bad):
    """What the merge check compares after a tick."""
    app, hw = rig.app, rig.hw
    c = app.controller
    ended = c.session_end if c.sessions_ended != was[1] else None
    return (STATE_NAMES[c.state], c.fault_code, hw.enable, hw.duty_u16, hw.led,
            app.supervisor.permitted, app.dosimeter.energy_mj, ended, tuple(bad))


def abstract(rig, world):
    """The phase-1 abstraction of the current state (see the module docstring)."""
    c, lv = rig.app.controller, rig.hw.levels
    state = STATE_NAMES[c.state]
    ready = None
    if state == "READY":
        since = ticks_diff(rig.now_ms, getattr(c, "entered_ms", rig.now_ms))
        ready = (since >= getattr(c, "emission_delay_ms", 0), getattr(c, "_seen_released", None))
    return (state, c.fault_code, getattr(rig.app.supervisor, "trip", None),
            getattr(c.thermal, "_have_reading", None),
            lv["key_on"], lv["interlock_closed"], lv["estop_pressed"],
            lv["footswitch_no_closed"], lv["footswitch_nc_closed"],
            world.reading_name.get(reading_of(rig.hw)), ready)


# -- the exploration ----------------------------------------------------------------------------


class Report:
    def __init__(self, depth, board, alphabet=ALPHABET):
        self.depth = depth
        self.board = board
        self.alphabet = alphabet
        self.abstract_states = 0
        self.phase1_ticks = 0
        self.roots = 0
        self.states = 0  # distinct merge keys expanded in phase 2
        self.transitions = 0  # symbol applications ticked and checked in phase 2
        self.merged = 0  # transitions to a state already explored at least as deep
        self.sequences = 0
        self.ticks = 0  # ticks run and checked in both phases (not the twin's, merge checks')
        self.restarts = 0
        self.seconds = 0.0
        self.state_names = set()
        self.fault_codes = set()
        self.thresholds = {}
        self.timestamps = []
        self.shared = 0
        self.hazards = []
        self.merge_checks = 0
        self.continuations = 0
        self.mismatches = []  # merge check failures: the merging is unsound
        self.violations = []  # (input sequence from boot, [messages])

    def lines(self):
        out = ["exploration: board %s, depth %d, alphabet of %d symbols (%s)"
               % (self.board, self.depth, len(self.alphabet),
                  "the monitors'" if self.alphabet is MONITOR_ALPHABET else "the inputs'"),
               "  phase 1: %d abstract states reachable (%d ticks)"
               % (self.abstract_states, self.phase1_ticks),
               "  phase 2: %d representatives; %d states explored, %d transitions ticked, "
               "%d merged" % (self.roots, self.states, self.transitions, self.merged),
               "  sequences covered: %d (%.3g)" % (self.sequences, float(self.sequences)),
               "  ticks checked: %d in %.1f s%s"
               % (self.ticks, self.seconds, " (%d restart(s): a new comparison seen)"
                  % self.restarts if self.restarts else ""),
               "  states seen: %s" % ", ".join(sorted(self.state_names)),
               "  fault codes seen: %s" % ", ".join(sorted(self.fault_codes)),
               "  merge key: %d timestamp attributes as ages, %d shared objects%s"
               % (len(self.timestamps), self.shared,
                  "; ages EXACT: " + "; ".join(self.hazards) if self.hazards else ""),
               "  age thresholds: %s" % ", ".join(
                   "%s %s" % (k, v) for k, v in self.thresholds.items()),
               "  merge checks: %d merged pairs, %d continuations replayed, %d mismatches"
               % (self.merge_checks, self.continuations, len(self.mismatches))]
        for mismatch in self.mismatches:
            out.append("    MISMATCH %s" % mismatch)
        out.append("  violations: %d" % len(self.violations))
        for seq, messages in self.violations:
            out.append("    %s: %s" % (" ".join(seq), "; ".join(messages)))
        return out


class Explorer:
    """`monitors`: the monitors' search (MONITOR_ALPHABET, MONITOR_TREATMENT, the key on from
    boot, the monitors' invariants) instead of the inputs' (ALPHABET)."""

    def __init__(self, depth=8, board="quick", max_violations=MAX_VIOLATIONS, progress=None,
                 seed=0, monitors=False):
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self.alphabet = MONITOR_ALPHABET if monitors else ALPHABET
        self.stride = max(ticks_of(symbol) for symbol in self.alphabet)  # ticks, at most
        self.world = World(board, MONITOR_TREATMENT if monitors else TREATMENT, key_on=monitors)
        self.world.monitors = monitors
        self.max_violations = max_violations
        self.progress = progress
        self.random = random.Random(seed)
        self.report = Report(depth, board, self.alphabet)

    def run(self):
        t0 = time.perf_counter()
        try:
            self.phase1()
            if not self._stop():
                self.phase2()
        finally:
            if getattr(self, "probe", None) is not None:
                self.probe.uninstall()
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _stop(self):
        return len(self.report.violations) >= self.max_violations

    # -- one tick --------------------------------------------------------------------------------

    def _run(self, rig, ticks, path, record=True):
        """_step through a symbol's ticks (plan()); False at the first violation."""
        return all(self._step(rig, levels, reading, path, record) for levels, reading in ticks)

    def _step(self, rig, levels, reading, path, record=True):
        """Set the inputs, tick once, check. False on a violation (recorded unless not
        `record`: the twin's and the merge checks' ticks)."""
        hw = rig.hw
        levels_was = dict(hw.levels)
        hw.levels.update(levels)
        hw.thermistor_uv, hw.spread_uv = reading
        was = before_tick(rig)
        self.probe.now_ms = rig.now_ms
        rig.tick()
        quiet(rig)
        bad = check(rig, was, levels_was, self.world)
        if not record:
            self._last = observe(rig, was, bad)
            return not bad
        report = self.report
        report.ticks += 1
        c = rig.app.controller
        report.state_names.add(STATE_NAMES[c.state])
        if c.fault_code is not None:
            report.fault_codes.add(c.fault_code)
        if bad:
            if len(report.violations) < self.max_violations:
                report.violations.append((tuple(path), bad))
            return False
        return True

    # -- phase 1 ---------------------------------------------------------------------------------

    def phase1(self):
        world = self.world
        rig, twin = world.new_rig(), world.new_rig(start_ms=TWIN_OFFSET_MS)
        self.rig, self.twin = rig, twin
        self.snaps = Snapshots(world.period_ms, world.monitors, world.hottest_mc())
        self._twin_snaps = Snapshots(world.period_ms, world.monitors)
        self.probe = TimeProbe()
        self.probe.install()
        self._changed, self._first, self._timestamps = set(), {}, set()
        self.reps = {}
        self._queue = deque()
        self._add(abstract(rig, world), ())
        # Long enough for the longest timing of the board, and the near-deadline states.
        idle_ticks = (max(v for k, v in world.timing.items() if k.endswith("_ms"))
                      // world.period_ms + LEAD + 1)
        while self._queue and not self._stop():
            pair, path = self.reps[self._queue.popleft()]
            for symbol in self.alphabet:
                Snapshots.restore(pair[0])
                ticks = plan(rig.hw.levels, reading_of(rig.hw), symbol, world)
                if self._run(rig, ticks, path + (symbol,)):
                    self._add(abstract(rig, world), path + (symbol,), pair, ticks)
                    # One more tick, so that the probe also sees what a state does next where
                    # it is no new abstract state (a silenced alarm timing out, say).
                    levels, reading = effect(ticks[-1][0], ticks[-1][1], "wait", world)
                    self._step(rig, levels, reading, path + (symbol, "wait"))
            Snapshots.restore(pair[0])
            self._idle(pair, path, idle_ticks)
        report = self.report
        report.abstract_states = len(self.reps)
        report.phase1_ticks = report.ticks
        # Shared from now on: what never changed. Everything else is copied per branch.
        frozen = [obj for oid, (obj, _) in self._first.items() if oid not in self._changed]
        self.snaps.configure(frozen, self._timestamps)
        self._frozen_contents = [(obj, _content(obj)) for obj in frozen]
        report.shared = len(frozen)
        report.timestamps = sorted("%s.%s" % k for k in self._timestamps)

    def _add(self, key, path, parent=None, ticks=()):
        """A new abstract state? The main Rig's current state represents it. The twin is
        brought to the same point (from the parent's twin, through the same `ticks`: their
        inputs) and compared with it."""
        if key in self.reps:
            return
        twin = self.twin
        if parent is not None:
            Snapshots.restore(parent[1])
            self._run(twin, ticks, path, record=False)
        self._compare_twins()
        saved = self.snaps.take(self.rig, False)[0]
        for obj, _, _ in saved:
            content = _content(obj)
            first = self._first.setdefault(id(obj), (obj, content))
            if first[1] != content:
                self._changed.add(id(obj))
        self.reps[key] = ((saved, self._twin_snaps.take(twin, False)[0]), path)
        self._queue.append(key)

    def _idle(self, pair, path, max_ticks):
        """Time passes, inputs unchanged, until the abstract state changes: adds the state
        after the change and the state LEAD ticks before it."""
        rig, world = self.rig, self.world
        start = abstract(rig, world)
        inputs = effect(rig.hw.levels, reading_of(rig.hw), "wait", world)
        for n in range(1, max_ticks + 1):
            if not self._step(rig, inputs[0], inputs[1], path + ("%s(%d)" % (IDLE, n),)):
                return
            changed = abstract(rig, world)
            if changed != start:
                break
        else:
            return
        self._add(changed, path + ("%s(%d)" % (IDLE, n),), pair, [inputs] * n)
        near = (start, "before", changed)
        if n > LEAD and near not in self.reps:
            Snapshots.restore(pair[0])
            self._run(rig, [inputs] * (n - LEAD), path)
            self._add(near, path + ("%s(%d)" % (IDLE, n - LEAD),), pair, [inputs] * (n - LEAD))

    def _compare_twins(self):
        """Leaf by leaf: timestamps differ by the offset, nothing else may."""
        a, b = leaves(self.rig), leaves(self.twin)
        shift = ticks_diff(TWIN_OFFSET_MS, 0)
        for path, (attribute, va) in a.items():
            vb = b.get(path, (None, _MISSING))[1]
            if va == vb:
                continue
            if type(va) is int and type(vb) is int and ticks_diff(vb, va) == shift:
                self._timestamps.add(attribute)
                continue
            raise ExplorationError("absolute-time dependence at %s: %r here, %r in the twin "
                                   "started %d ms later" % (path, va, vb, TWIN_OFFSET_MS))

    # -- phase 2 ---------------------------------------------------------------------------------

    def phase2(self):
        probe, report = self.probe, self.report
        # The invariants' own use of a timestamp (the probe does not see it).
        probe.declare(("Observer", "ready_ms"), self.rig.app.controller.emission_delay_ms)
        while True:
            known = probe.signature()
            self.snaps.set_horizon(probe, self.depth * self.stride)
            self._search_all(known)
            if probe.signature() == known or self._stop():
                break
            # The probe saw a comparison phase 1 had not: merges so far may be wrong.
            report.restarts += 1
        for obj, content in self._frozen_contents:
            if _content(obj) != content:
                raise ExplorationError("a shared object changed during phase 2: %r" % (obj,))
        report.thresholds = {"%s.%s" % k if k else "(unknown site)": sorted(v)
                             for k, v in sorted(probe.thresholds.items(), key=str)}
        report.hazards = list(probe.hazards)

    def _search_all(self, known):
        """Breadth first from all representatives together, by symbols left: a state is met
        first with the most symbols left it will have, so it is expanded once. Stops early
        when the probe learns something."""
        report, snaps, rig = self.report, self.snaps, self.rig
        self.memo, self.witnesses, self._witness_hits, self._checks_by_state = {}, {}, {}, {}
        report.states = report.transitions = report.merged = 0
        report.merge_checks = report.continuations = 0
        layer = []
        for (saved, _), path in self.reps.values():
            Snapshots.restore(saved)
            saved, key = snaps.take(rig)
            if key not in self.memo:
                self.memo[key] = self.depth
                layer.append((saved, path))
        report.roots = len(self.reps)
        for remaining in range(self.depth, 0, -1):
            next_layer = []
            for saved, path in layer:
                self._expand(saved, remaining, path, next_layer)
                if self._stop():
                    return
            if self.probe.signature() != known:
                return
            if self.progress:
                self.progress("  %d symbols left: %d states, %d transitions" % (
                    remaining, report.states, report.transitions))
            layer = next_layer
        report.sequences = report.roots * sum(len(self.alphabet) ** k
                                              for k in range(self.depth + 1))

    def _expand(self, saved, remaining, path, next_layer):
        """Every symbol from one state; the new states with symbols left go to `next_layer`."""
        rig, snaps, world, report, memo = self.rig, self.snaps, self.world, self.report, self.memo
        report.states += 1
        Snapshots.restore(saved)
        groups = {}
        levels, reading = rig.hw.levels, reading_of(rig.hw)
        for symbol in self.alphabet:
            ticks = plan(levels, reading, symbol, world)
            groups.setdefault(tuple((tuple(lv.values()), r) for lv, r in ticks), []).append(
                (symbol, ticks))
        first = True
        for members in groups.values():
            symbol, ticks = members[0]
            if not first:
                Snapshots.restore(saved)
            first = False
            label = symbol if len(members) == 1 else "=".join(m[0] for m in members)
            child_path = path + (label,)
            report.transitions += 1
            if not self._run(rig, ticks, child_path) or remaining == 1:
                continue
            child_saved, key = snaps.take(rig)
            explored = memo.get(key, -1)
            if explored >= remaining - 1:
                report.merged += 1
                witness = self.witnesses.get(key)
                if witness is not None:
                    # Up to MERGE_CHECKS per state name (the rare states count as much as the
                    # common ones), spread over the whole search.
                    name = STATE_NAMES[rig.app.controller.state]
                    hits = self._witness_hits[name] = self._witness_hits.get(name, 0) + 1
                    if (hits % MERGE_CHECK_EVERY == 1
                            and self._checks_by_state.get(name, 0) < MERGE_CHECKS):
                        self._checks_by_state[name] = self._checks_by_state.get(name, 0) + 1
                        self._check_merge(witness, (child_saved, remaining - 1, child_path))
            else:
                memo[key] = remaining - 1
                next_layer.append((child_saved, child_path))
                if key[0] % WITNESS_EVERY == 0:
                    self.witnesses[key] = (child_saved, remaining - 1, child_path)

    def _check_merge(self, kept, merged):
        """Run the state kept for a key and a state merged into it through the same random
        continuations: they must be observed alike at every tick."""
        (kept_saved, kept_left, kept_path), (saved, left, path) = kept, merged
        if all(a[2] == b[2] for a, b in zip(kept_saved, saved, strict=False)) and len(
                kept_saved) == len(saved):
            return  # the very same state: nothing to learn
        report, world, rig = self.report, self.world, self.rig
        report.merge_checks += 1
        for _ in range(MERGE_CONTINUATIONS):
            symbols = [self.random.choice(self.alphabet) for _ in range(min(left, kept_left))]
            traces = []
            for start in (kept_saved, saved):
                Snapshots.restore(start)
                trace = []
                for symbol in symbols:
                    for levels, reading in plan(rig.hw.levels, reading_of(rig.hw), symbol,
                                                world):
                        self._step(rig, levels, reading, (), record=False)
                        trace.append(self._last)
                traces.append(trace)
            report.continuations += 1
            if traces[0] != traces[1]:
                at = next(i for i, (a, b) in enumerate(zip(*traces, strict=True)) if a != b)
                report.mismatches.append(
                    "%s and %s then %s: %s vs %s" % (" ".join(kept_path), " ".join(path),
                                                     " ".join(symbols[:at + 1]),
                                                     traces[0][at], traces[1][at]))
                return


def explore(depth=8, board="quick", max_violations=MAX_VIOLATIONS, progress=None,
            monitors=False):
    """Run an exploration; returns its Report."""
    return Explorer(depth, board, max_violations, progress, monitors=monitors).run()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Every input sequence up to a depth from every reachable abstract state "
                    "of the real firmware, with safety invariants checked after every tick.")
    parser.add_argument("--depth", type=int, default=8,
                        help="symbols per sequence of the inputs' search (default 8)")
    parser.add_argument("--monitor-depth", type=int, default=3,
                        help="symbols per sequence of the monitors' search (default 3; 0: none)")
    parser.add_argument("--board", choices=sorted(BOARDS), default="quick",
                        help="quick: the shortest timings a board may have (default); sim: "
                             "the sim board's (its minutes-long timeouts make phase 1 slow)")
    parser.add_argument("--progress", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.progress else None
    status = 0
    for depth, monitors in ((args.depth, False), (args.monitor_depth, True)):
        if depth < 1:
            continue
        try:
            report = explore(depth, args.board, progress=progress, monitors=monitors)
        except ExplorationError as e:
            print("exploration invalid: %s" % e)
            return 2
        print("\n".join(report.lines()))
        if report.mismatches:
            return 2
        status = status or (1 if report.violations else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
