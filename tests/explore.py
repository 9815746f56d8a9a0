"""Exhaustive exploration of the real firmware (issue 6, item 7).

Drives the real `App` (firmware/lib/app.py) on `support.FakeHardware` through `support.Rig`, in
virtual time, through every sequence of input symbols up to a depth N (default 8) from every
reachable abstract state, and checks safety invariants after EVERY tick.

    python tests/explore.py [--depth 8] [--board quick|sim] [--progress]

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
                             OVER_TEMP when a reset has just restarted the thermal history
    temp_invalid             the ADC reads the open-sensor rail, 3.1 V (THERMISTOR_OPEN)

Symbols with the same effect on the inputs in a state (footswitch_down while it is down, and
wait) are ticked once and count for all of them.

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
4. History that cannot reach the invariants within N ticks of this alphabet (KEY_LEAVES_OUT):
   report-only counters (refusals, sessions, the recorder's copies, the status-line clock,
   emitting_ms), and the thermal monitor's history (the one-second rings of the rate and
   runaway checks, the smoothing average, the stuck-sensor tracking). Why it is safe here: a
   high or invalid reading latches FAULT in the same tick, so outside FAULT every reading is
   the normal one; the only way out of FAULT is a reset, which restarts that history (the next
   reading re-seeds the average); the rate check needs 5 s of readings, the runaway check 20 s
   of emission (a treatment lasts 1 s), the stuck check one raw value for 5 s (FakeHardware's
   samples are spread). In FAULT the smoothing still moves the thermal level, which only
   changes the buzzer and the status line.

Why reduce at all: with exact snapshots (time shift only) the states multiply by about 5 per
level of depth (2.4 million states within 8 symbols of a single representative, measured);
keeping any one group of KEY_LEAVES_OUT in the key doubles the states at depth 6. Depth 8 from
every representative is then out of reach in CPython.

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
- the emission LED is lit exactly in READY, EMITTING and PAUSED.
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
    for _path in (_HERE.parent / "firmware" / "lib", _HERE / "firmware", _HERE):
        if str(_path) not in sys.path:
            sys.path.insert(0, str(_path))

from array import array  # noqa: E402

import ticks  # noqa: E402
from controller import STATE_NAMES  # noqa: E402
from support import Rig  # noqa: E402
from test_state_machine import (  # noqa: E402
    ALLOWED,
    BOARDS,
    SENSOR_FAULT_UV,
    SESSION_STATES,
    TREATMENTS,
)
from ticks import ticks_add, ticks_diff  # noqa: E402

ALPHABET = ("wait", "footswitch_down", "footswitch_up", "key", "interlock", "estop", "arm",
            "reset", "ack", "temp_normal", "temp_high", "temp_invalid")
IDLE = "idle"  # phase 1 only
BUTTONS = {"arm": "arm_pressed", "reset": "reset_pressed", "ack": "ack_pressed"}
TOGGLES = {"key": "key_on", "interlock": "interlock_closed", "estop": "estop_pressed"}
TEMPERATURES = ("temp_normal", "temp_high", "temp_invalid")
NORMAL_C = 25.0
HIGH_ABOVE_SHUTDOWN_C = 5.0
TREATMENT = TREATMENTS[0]  # 10 W, 1 J/cm2, 10 cm2: 10 J, one second of emission
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
    # thermal history: restarted by the reset that leaves FAULT (see the docstring)
    ("ThermalMonitor", "_temp_ring"), ("ThermalMonitor", "_heat_ring"),
    ("ThermalMonitor", "_seconds"), ("ThermalMonitor", "_next_second_ms"),
    ("ThermalMonitor", "_emitting_seconds"), ("ThermalMonitor", "_heat_uw"),
    ("ThermalMonitor", "_smooth_mc"), ("ThermalMonitor", "_stuck_since_ms"),
    ("ThermalMonitor", "_stuck_low"), ("ThermalMonitor", "_stuck_high"),
}


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

    def __init__(self, period_ms):
        self.period_ms = period_ms
        self.frozen = {}  # id -> (index, object): shared, never copied
        self.timestamps = set()  # (class, attribute) of the timestamp attributes
        self.left_out = set(KEY_LEAVES_OUT)
        self._probe = None  # None: exact ages
        self._classes = {}
        self._plans = {}
        self._idents = {}
        self._root = self._program = None

    def configure(self, frozen, timestamps):
        self.frozen = {id(obj): (i, obj) for i, obj in enumerate(frozen)}
        self.timestamps = set(timestamps)
        self._plans, self._program = {}, None

    def set_horizon(self, probe, depth):
        """Age classes from what the probe saw, valid for `depth` more ticks."""
        self._classes = {}
        self._probe, self._depth = probe, depth

    def _windows(self, attribute):
        """The age windows kept exact for `attribute` (sorted starts, ends), or None: exact."""
        probe = self._probe
        if probe is None or probe.hazards or attribute in probe.arithmetic:
            return None
        thresholds = probe.thresholds.get(attribute, set()) | probe.thresholds.get(None, set())
        merged = []
        for lo, hi in sorted((c - (self._depth + 1) * self.period_ms, c + self.period_ms)
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
        for obj, kind, plan, expected, keyed in self._program:
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
                program.append((obj, _ARRAY, None, (), keyed))
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
            program.append((obj, kind, plan[:6], tuple((i, values[i]) for i in refs_at), keyed))
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


class World:
    """The board, the treatment and the temperature readings of one exploration."""

    def __init__(self, board_name):
        self.board_name = board_name
        self.board = BOARDS[board_name]
        self.period_ms = self.board["loop_ms"]
        self.timing = self.board["timing"]
        self.thermal = self.board["thermal"]
        self.temp_uv = self.temp_of_uv = None

    def new_rig(self, start_ms=0):
        power_w, dose, area = TREATMENT
        rig = Rig(board=self.board, power_w=power_w, dose_j_cm2=dose, area_cm2=area,
                  temp_c=NORMAL_C, start_ms=start_ms)
        rig.observer = Observer()
        quiet(rig)
        sensor = rig.app.controller.thermal.sensor
        high_c = self.thermal["shutdown_c"] + HIGH_ABOVE_SHUTDOWN_C
        self.temp_uv = {"temp_normal": int(sensor.uv_at(NORMAL_C)),
                        "temp_high": int(sensor.uv_at(high_c)),
                        "temp_invalid": SENSOR_FAULT_UV["open"]}
        self.temp_of_uv = {uv: name for name, uv in self.temp_uv.items()}
        return rig


def quiet(rig):
    """The Rig keeps every event line: dropped after each tick (a log, not state)."""
    rig.lines.clear()
    rig.last_status = None


def effect(levels, uv, symbol, world):
    """The input levels and thermistor reading after `symbol` (a new dict)."""
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
        uv = world.temp_uv[symbol]
    return new, uv


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
    temp = world.temp_of_uv.get(hw.thermistor_uv, "other")
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
    if temp != "temp_normal":
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
            if lv["estop_pressed"] or temp != "temp_normal":
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
    return bad


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
            world.temp_of_uv.get(rig.hw.thermistor_uv), ready)


# -- the exploration ----------------------------------------------------------------------------


class Report:
    def __init__(self, depth, board):
        self.depth = depth
        self.board = board
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
        out = ["exploration: board %s, depth %d, alphabet of %d symbols"
               % (self.board, self.depth, len(ALPHABET)),
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
    def __init__(self, depth=8, board="quick", max_violations=MAX_VIOLATIONS, progress=None,
                 seed=0):
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self.world = World(board)
        self.max_violations = max_violations
        self.progress = progress
        self.random = random.Random(seed)
        self.report = Report(depth, board)

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

    def _step(self, rig, levels, uv, path, record=True):
        """Set the inputs, tick once, check. False on a violation (recorded unless not
        `record`: the twin's and the merge checks' ticks)."""
        hw = rig.hw
        levels_was = dict(hw.levels)
        hw.levels.update(levels)
        hw.thermistor_uv = uv
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
        self.snaps = Snapshots(world.period_ms)
        self._twin_snaps = Snapshots(world.period_ms)
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
            for symbol in ALPHABET:
                Snapshots.restore(pair[0])
                levels, uv = effect(rig.hw.levels, rig.hw.thermistor_uv, symbol, world)
                if self._step(rig, levels, uv, path + (symbol,)):
                    self._add(abstract(rig, world), path + (symbol,), pair, levels, uv, 1)
                    # One more tick, so that the probe also sees what a state does next where
                    # it is no new abstract state (a silenced alarm timing out, say).
                    levels, uv = effect(levels, uv, "wait", world)
                    self._step(rig, levels, uv, path + (symbol, "wait"))
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

    def _add(self, key, path, parent=None, levels=None, uv=None, ticks=0):
        """A new abstract state? The main Rig's current state represents it. The twin is
        brought to the same point (from the parent's twin, `ticks` ticks with these inputs) and
        compared with it."""
        if key in self.reps:
            return
        twin = self.twin
        if parent is not None:
            Snapshots.restore(parent[1])
            for _ in range(ticks):
                self._step(twin, levels, uv, path, record=False)
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
        levels, uv = effect(rig.hw.levels, rig.hw.thermistor_uv, "wait", world)
        for n in range(1, max_ticks + 1):
            if not self._step(rig, levels, uv, path + ("%s(%d)" % (IDLE, n),)):
                return
            changed = abstract(rig, world)
            if changed != start:
                break
        else:
            return
        self._add(changed, path + ("%s(%d)" % (IDLE, n),), pair, levels, uv, n)
        near = (start, "before", changed)
        if n > LEAD and near not in self.reps:
            Snapshots.restore(pair[0])
            for _ in range(n - LEAD):
                self._step(rig, levels, uv, path)
            self._add(near, path + ("%s(%d)" % (IDLE, n - LEAD),), pair, levels, uv, n - LEAD)

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
            self.snaps.set_horizon(probe, self.depth)
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
        report.sequences = report.roots * sum(len(ALPHABET) ** k for k in range(self.depth + 1))

    def _expand(self, saved, remaining, path, next_layer):
        """Every symbol from one state; the new states with symbols left go to `next_layer`."""
        rig, snaps, world, report, memo = self.rig, self.snaps, self.world, self.report, self.memo
        report.states += 1
        Snapshots.restore(saved)
        groups = {}
        levels, uv = rig.hw.levels, rig.hw.thermistor_uv
        for symbol in ALPHABET:
            new_levels, new_uv = effect(levels, uv, symbol, world)
            groups.setdefault((tuple(new_levels.values()), new_uv), []).append(
                (symbol, new_levels, new_uv))
        first = True
        for members in groups.values():
            symbol, new_levels, new_uv = members[0]
            if not first:
                Snapshots.restore(saved)
            first = False
            label = symbol if len(members) == 1 else "=".join(m[0] for m in members)
            child_path = path + (label,)
            report.transitions += 1
            if not self._step(rig, new_levels, new_uv, child_path) or remaining == 1:
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
            symbols = [self.random.choice(ALPHABET) for _ in range(min(left, kept_left))]
            traces = []
            for start in (kept_saved, saved):
                Snapshots.restore(start)
                trace = []
                for symbol in symbols:
                    levels, uv = effect(rig.hw.levels, rig.hw.thermistor_uv, symbol, world)
                    self._step(rig, levels, uv, (), record=False)
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


def explore(depth=8, board="quick", max_violations=MAX_VIOLATIONS, progress=None):
    """Run an exploration; returns its Report."""
    return Explorer(depth, board, max_violations, progress).run()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Every input sequence up to a depth from every reachable abstract state "
                    "of the real firmware, with safety invariants checked after every tick.")
    parser.add_argument("--depth", type=int, default=8, help="symbols per sequence (default 8)")
    parser.add_argument("--board", choices=sorted(BOARDS), default="quick",
                        help="quick: the shortest timings a board may have (default); sim: "
                             "the sim board's (its minutes-long timeouts make phase 1 slow)")
    parser.add_argument("--progress", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.progress else None
    try:
        report = explore(args.depth, args.board, progress=progress)
    except ExplorationError as e:
        print("exploration invalid: %s" % e)
        return 2
    print("\n".join(report.lines()))
    if report.mismatches:
        return 2
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
