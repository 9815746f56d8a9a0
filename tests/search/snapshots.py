"""Snapshots of a whole Rig: saved, restored and keyed (the merge key). docs/search.md, "What
merging means"."""

from array import array
from bisect import bisect_right
from operator import is_, itemgetter

from ticks import _HALF, _PERIOD

from search import abstraction

_DICT, _SLOTS, _PLAIN_DICT, _LIST, _ARRAY, _TUPLE = range(6)
_LEAVES = (int, float, str, bool, bytes, type(None), complex)
MISSING = object()
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
    every object still refers to the same objects, and compiles it again when not. Dead records
    (abstraction.DEAD: rewritten every tick before anything reads them) are neither saved nor
    keyed."""

    def __init__(self, period_ms, monitors=False, hottest_mc=0):
        self.period_ms = period_ms
        self.frozen = {}  # id -> (index, object): shared, never copied
        self.timestamps = set()  # (class, attribute) of the timestamp attributes
        self.monitors = monitors  # key the thermal history (the monitors' search)
        self.left_out = set(abstraction.KEY_LEAVES_OUT) | (
            set() if monitors else abstraction.HISTORY)
        self.hottest_mc = hottest_mc  # the hottest valid reading the alphabet makes
        self.horizon = 0
        self.root = None  # the Rig keyed
        self._probe = None  # None: exact ages
        self._classes = {}  # attribute -> {age: its class in the key}, or None: exact
        self._window_cache = {}  # attribute -> _windows()
        self._plans = {}
        self._idents = {}
        self._root = self._program = None

    def configure(self, frozen, timestamps):
        self.frozen = {id(obj): (i, obj) for i, obj in enumerate(frozen)}
        self.timestamps = set(timestamps)
        self._plans, self._program = {}, None

    def set_horizon(self, probe, ticks):
        """Age classes from what the probe saw, valid for `ticks` more ticks."""
        self._classes, self._window_cache = {}, {}
        self._plans, self._program = {}, None  # (their stamps hold the classes)
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
        """An age of `attribute` as the key holds it: exact within a window around a
        threshold, else which gap between the windows it lies in (on the same side of every
        threshold for the ticks the search can still run)."""
        windows = self._window_cache.get(attribute, MISSING)
        if windows is MISSING:
            windows = self._window_cache[attribute] = self._windows(attribute)
        if windows is None:
            return age
        starts, ends = windows
        i = bisect_right(starts, age) - 1
        if i >= 0 and age <= ends[i]:
            return age
        return ("gap", i)

    def _ages(self, attribute):
        """{age: class} for `attribute`, filled as ages come (None: every age exact)."""
        if attribute not in self._classes:
            self.age_class(attribute, 0)  # (works out the windows)
            self._classes[attribute] = None if self._window_cache[attribute] is None else {}
        return self._classes[attribute]

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
        for obj, kind, copy in saved:
            if kind == _DICT:
                d = obj.__dict__
                if len(d) != len(copy):
                    d.clear()
                d.update(copy)
            elif kind == _ARRAY:
                obj[:] = copy
            elif kind == _PLAIN_DICT:
                if len(obj) != len(copy):
                    obj.clear()
                obj.update(copy)
            elif kind == _LIST:
                obj[:] = copy
            else:
                names, values = copy
                for name, value in zip(names, values, strict=True):
                    if value is MISSING:
                        if hasattr(obj, name):
                            delattr(obj, name)
                    else:
                        setattr(obj, name, value)

    def _run(self, now, with_key):
        saved = []
        append = saved.append
        key = [self._signature] if with_key else None
        period, half = _PERIOD, _HALF
        for obj, kind, plan, expected, keyed, canonical, shapes in self._program:
            if kind == _ARRAY:
                copy = obj[:]
                append((obj, _ARRAY, copy))
                if keyed and with_key:
                    key.append(copy.tobytes())
                continue
            ident, names, types, refs_at, kept, stamps = plan
            if kind in (_DICT, _PLAIN_DICT):
                d = obj.__dict__ if kind == _DICT else obj
                # (No attribute is ever deleted: the same count and last name, the same names.)
                if len(d) != len(names) or (names and next(reversed(d)) != names[-1]):
                    return None
                copy = d.copy()
                values = tuple(copy.values())
            elif kind == _SLOTS:
                values = tuple([getattr(obj, n, MISSING) for n in names])
                copy = (names, values)
            else:
                copy = values = tuple(obj) if kind == _TUPLE else obj[:]
                if len(values) != names:
                    return None
            shape = tuple(map(type, values))
            if shape != types:
                # A value changed type (None <-> int, say): the plan of the new shape will do
                # unless the attributes that refer to objects changed.
                plan = shapes.get(shape)
                if plan is None:
                    plan = shapes[shape] = self._plan(type(obj), names, shape)
                if plan[3] != refs_at:
                    return None
                ident, names, types, refs_at, kept, stamps = plan[:6]
            if expected and not all(map(is_, expected[0](values), expected[1])):
                return None
            if kind != _TUPLE:
                append((obj, kind, copy))
            if keyed and with_key:
                key.append(ident)
                if kept is not None:
                    key.append(kept(values))
                for i, ages, attribute in stamps:
                    age = (now - values[i] + half) % period - half  # ticks_diff, inlined: hot
                    if ages is None:
                        key.append(age)
                    else:
                        found = ages.get(age)
                        if found is None:
                            found = ages[age] = self.age_class(attribute, age)
                        key.append(found)
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
        dead = abstraction.DEAD

        def visit(obj, keyed):
            index[id(obj)] = len(index)
            t = type(obj)
            if t is array:
                program.append((obj, _ARRAY, None, (), keyed, None, None))
                return
            d = obj if t is dict else getattr(obj, "__dict__", None)
            if d is not None:
                kind = _PLAIN_DICT if t is dict else _DICT
                names, values = tuple(d), tuple(d.values())
            elif t is list or t is tuple:
                kind, names, values = (_LIST if t is list else _TUPLE), len(obj), tuple(obj)
            else:
                kind, names = _SLOTS, _slots(t)
                values = tuple([getattr(obj, n, MISSING) for n in names])
            plan = self._plan(t, names, tuple(map(type, values)))
            refs_at, keyed_refs = plan[3], plan[6]
            owner = None if t in (dict, list, tuple) else t.__name__
            walked = [i for i in refs_at
                      if not _dead((owner, names[i] if isinstance(names, tuple) else i), dead)]
            expected = ((_getter(walked), tuple(values[i] for i in walked)) if walked else ())
            program.append((obj, kind, plan[:6], expected, keyed,
                            abstraction.KEY_CANONICAL.get(t.__name__), {}))
            positions = []
            for i, use in zip(refs_at, keyed_refs, strict=True):
                if i not in walked:
                    _check_dead(values[i])
                    continue
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
        """(id, names, types, indices of references, getter of the values kept, ((index, {age:
        class} or None: exact, attribute), ...) of timestamps, whether each reference is keyed,
        the class's name) for objects of a shape."""
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
                    stamps.append((i, self._ages(attribute), attribute))
                elif use:
                    kept.append(i)
            elif _walkable_type(vt):
                refs_at.append(i)
                keyed_refs.append(use)
            # else: functions, bound methods: wiring, not state
        # Shapes that differ only in what the key leaves out are one shape to the key.
        ident = self._idents.setdefault(
            (t, names, tuple(vt if i in kept else None for i, vt in enumerate(types))),
            len(self._idents))
        plan = self._plans[(t, names, types)] = (ident, names, types, tuple(refs_at),
                                                 _getter(kept), tuple(stamps), tuple(keyed_refs),
                                                 owner)
        return plan


def _getter(indices):
    """A function of a tuple: the values at `indices`, as a tuple (None: no index)."""
    if not indices:
        return None
    if len(indices) == 1:
        i = indices[0]
        return lambda values: (values[i],)
    return itemgetter(*indices)


def _dead(attribute, dead):
    return attribute in dead or "scratch" in str(attribute[1])


def _check_dead(value):
    """A dead record holds leaves only (else what it refers to would go unsaved)."""
    items = ()
    if type(value) in (list, tuple):
        items = value
    elif type(value) is not array:
        d = getattr(value, "__dict__", None)
        items = d.values() if d is not None else [
            getattr(value, n, None) for n in _slots(type(value))]
    for v in items:
        if not isinstance(v, _LEAVES) and type(v) is not array:
            raise AssertionError("a dead record refers to %r: it would go unsaved" % (v,))


def leaves(obj, path="rig", owner_attr=None, out=None, seen=None):
    """{path: ((class, attribute), value)} of every leaf reachable from obj (arrays as tuples),
    dead records left out: what the twin comparison looks at."""
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if owner_attr is not None and _dead(owner_attr, abstraction.DEAD):
        return out
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


def content(obj):
    """One object's own state, comparable (identity for the objects it refers to)."""
    if type(obj) is array:
        return obj.tobytes()
    if type(obj) in (dict, list, tuple):
        container = obj
    else:
        d = getattr(obj, "__dict__", None)
        container = d if d is not None else [getattr(obj, n, MISSING) for n in _slots(type(obj))]
    items = container.items() if type(container) is dict else enumerate(container)
    return tuple((k, v if isinstance(v, _LEAVES) else
                  v.tobytes() if type(v) is array else ("id", id(v))) for k, v in items)

