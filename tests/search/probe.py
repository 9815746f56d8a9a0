"""The time probe: what the firmware (and the oracle) do with ages. docs/search.md, "What merging
means", 2: the merge key keeps an age exact only near the thresholds it is ever compared with."""

import inspect
import linecache
import re
import sys
from pathlib import Path

import ticks

import search.oracle


class TimeProbe:
    """Wraps `ticks_diff` in the firmware modules and the oracle's (its own timers are merged
    by the same rule as the firmware's). Its results are ages that know which
    timestamp attribute they come from (read off the call site: `ticks_diff(now,
    self.entered_ms)`, or a local assigned from `self.x` in the same function) and record what
    they are compared with (thresholds), reduced modulo, or used in arithmetic."""

    MODULO_OK = ("alarms",)  # the tone and burst patterns: the buzzer is not checked

    def __init__(self):
        self.thresholds = {}  # (class, attribute), or None for an unknown call site -> {ms}
        self.arithmetic = set()  # attributes whose ages enter arithmetic: kept exact
        self.modulo = {}  # module -> {moduli}
        self.hazards = []  # reasons to keep every age exact
        self.sites = set()  # the attributes ticks_diff took as its start: timestamps
        self.window = None  # open_window(): every (attribute, threshold) compared since
        self.now_ms = None  # the time of the tick running
        self._classes = {}  # (code, instruction) of a call site -> the class of its ages
        self._sources = {}
        self._patched = []

    def signature(self):
        return (sorted((str(k), sorted(v)) for k, v in self.thresholds.items()),
                sorted(map(str, self.arithmetic)), list(self.hazards))

    def install(self):
        global _PROBE
        _PROBE = self
        original = ticks.ticks_diff
        period, half = ticks._PERIOD, ticks._HALF  # (CPython's ticks_diff, inlined: hot)
        classes, resolve, getframe = self._classes, self._resolve, sys._getframe

        def tracked_diff(end, start):
            if end != self.now_ms:
                self.hazard("an age not taken from the tick's time")
            frame = getframe(1)
            cls = classes.get((frame.f_code, frame.f_lasti))
            if cls is None:
                cls = resolve(frame)
            return cls((end - start + half) % period - half)

        assert original(3, period - 2) == (3 - (period - 2) + half) % period - half
        lib = Path(ticks.__file__).resolve().parent
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if (path and module is not ticks and getattr(module, "ticks_diff", None) is original
                    and (Path(path).resolve().parent == lib or module is search.oracle)):
                module.ticks_diff = tracked_diff
                self._patched.append(module)

    def uninstall(self):
        global _PROBE
        for module in self._patched:
            module.ticks_diff = ticks.ticks_diff
        self._patched = []
        _PROBE = None

    def open_window(self):
        """Remember from now on every comparison made, in `window` (the sites' caches of what
        they reported are emptied, so that each reports again)."""
        self.window = set()
        for cls in self._classes.values():
            cls.seen = set()

    def close_window(self):
        """The comparisons made since open_window(): {(attribute, threshold)}."""
        window, self.window = self.window, None
        return window

    def hazard(self, why):
        if why not in self.hazards:
            self.hazards.append(why)

    def _resolve(self, frame):
        """The class of the ages a call site makes: an _Age that knows its attribute."""
        site = self._site(frame)
        if site is not None:
            self.sites.add(site)
        cls = type("Age", (_Age,), {"__slots__": (), "site": site, "seen": set(),
                                    "arith": False})
        self._classes[(frame.f_code, frame.f_lasti)] = cls
        return cls

    def _site(self, frame):
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        match = _DIFF_CALL.search(line)
        owner = frame.f_locals.get("self")
        if match and owner is not None:
            start = match.group(1)
            if start.startswith("self."):
                return (type(owner).__name__, start[5:])
            # A local: `since = self._mismatch_since_ms` earlier in the function.
            source = self._sources.get(frame.f_code)
            if source is None:
                source = self._sources[frame.f_code] = inspect.getsource(frame.f_code)
            local = re.search(r"\b%s\s*=\s*self\.(\w+)\s*$" % re.escape(start), source, re.M)
            if local:
                return (type(owner).__name__, local.group(1))
        return None


_PROBE = None
_DIFF_CALL = re.compile(r"ticks_diff\(\s*[^,()]+,\s*([\w.]+)\s*\)")


class _Age(int):
    """An age from the probed ticks_diff (see TimeProbe): an int that reports its uses. Each
    call site has its own subclass (TimeProbe._resolve), which knows the `site` (the timestamp
    attribute), the thresholds already reported (`seen`: hot, so they are not again) and
    whether its arithmetic was (`arith`)."""

    __slots__ = ()
    __hash__ = int.__hash__
    site = None
    seen = frozenset()
    arith = False

    def _compare(self, other):
        probe = _PROBE
        if probe is None:
            return
        if isinstance(other, _Age):
            probe.hazard("two ages compared")
        elif isinstance(other, int):
            probe.thresholds.setdefault(self.site, set()).add(int(other))
            if probe.window is not None:
                probe.window.add((self.site, int(other)))
            if type(other) is int:
                type(self).seen.add(other)
        else:
            probe.hazard("an age compared with %r" % (other,))

    def __ge__(self, other):
        if type(other) is int:
            if other not in self.seen:
                self._compare(other)
            return int.__ge__(self, other)
        self._compare(other)
        return int(self) >= other

    def __gt__(self, other):
        if type(other) is int:
            if other not in self.seen:
                self._compare(other)
            return int.__gt__(self, other)
        self._compare(other)
        return int(self) > other

    def __le__(self, other):
        if type(other) is int:
            if other not in self.seen:
                self._compare(other)
            return int.__le__(self, other)
        self._compare(other)
        return int(self) <= other

    def __lt__(self, other):
        if type(other) is int:
            if other not in self.seen:
                self._compare(other)
            return int.__lt__(self, other)
        self._compare(other)
        return int(self) < other

    def __eq__(self, other):
        if type(other) is int:
            if other not in self.seen:
                self._compare(other)
            return int.__eq__(self, other)
        self._compare(other)
        return int(self) == other

    def __ne__(self, other):
        if type(other) is int:
            if other not in self.seen:
                self._compare(other)
            return int.__ne__(self, other)
        self._compare(other)
        return int(self) != other

    def __bool__(self):
        if 0 not in self.seen:
            self._compare(0)
        return int.__ne__(self, 0)

    def __mod__(self, other):
        probe = _PROBE
        if probe is not None:
            module = sys._getframe(1).f_globals.get("__name__")
            probe.modulo.setdefault(module, set()).add(other)
            if module not in TimeProbe.MODULO_OK:
                probe.hazard("an age reduced modulo %r in %s" % (other, module))
        return int(self) % other

    def _arith(self):
        if not self.arith and _PROBE is not None:
            if self.site is None:
                _PROBE.hazard("arithmetic on an age from an unknown call site")
            else:
                type(self).arith = True
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


