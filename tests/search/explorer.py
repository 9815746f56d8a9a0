"""The exhaustive search: phase 1 finds the reachable abstract states, phase 2 applies every
symbol sequence up to the depth to each, merging states by their key, with the safety oracle
checked after every tick; the merge checks test the merging by experiment. docs/search.md has the
design, what a pass proves and what it does not."""

import random
import time
from collections import deque

from controller import STATE_NAMES
from ticks import ticks_diff

from search.abstraction import abstract
from search.alphabet import IDLE, MONITOR_ALPHABET, World, effect, plan, quiet, reading_of, ticks_of
from search.probe import TimeProbe
from search.snapshots import MISSING, Snapshots, content, leaves

LEAD = 3  # near-deadline representatives: this many ticks before a time-driven change
TWIN_OFFSET_MS = (1 << 29) + 12345  # the twin Rig's start: far from the main one's, off the grid
MAX_VIOLATIONS = 20
WITNESS_EVERY = 8  # one key in this many keeps its state, for the merge checks
MERGE_CHECK_EVERY = 8  # one merge into such a key in this many is checked...
MERGE_CHECKS = 150  # ...up to this many per state name, each with...
MERGE_CONTINUATIONS = 3  # ...this many random continuations
# An idle stops where time alone changes nothing any more: the state is the same as this long
# ago (a multiple of every period the firmware keeps: status lines, collections, the uptime),
# its ages compared as if the search had REGIME_HORIZON ticks to run.
REGIME_MS = 1000
REGIME_HORIZON = 10 ** 9


class _Window:
    """What an age class needs of a probe, for the comparisons of one regime window only."""

    def __init__(self, probe, window):
        self.thresholds = {}
        for attribute, threshold in window:
            self.thresholds.setdefault(attribute, set()).add(threshold)
        self.arithmetic, self.hazards = probe.arithmetic, probe.hazards


class ExplorationError(Exception):
    """The exploration itself is invalid (not a violation of the oracle by the firmware)."""


def observe(rig, sessions_was, bad):
    """What the merge check compares after a tick."""
    app, hw = rig.app, rig.hw
    c = app.controller
    ended = c.session_end if c.sessions_ended != sessions_was else None
    return (STATE_NAMES[c.state], c.fault_code, hw.enable, hw.duty_u16, hw.led,
            app.supervisor.permitted, app.dosimeter.energy_mj, ended, tuple(bad))


class Report:
    def __init__(self, depth, board, alphabet):
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
        self.idles_cut = 0  # phase-1 idles stopped where time alone changed nothing any more
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
               "  phase 1: %d abstract states reachable (%d ticks; %d idles cut short)"
               % (self.abstract_states, self.phase1_ticks, self.idles_cut),
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
    boot, the oracle's warm step) instead of the inputs' (ALPHABET)."""

    def __init__(self, depth=8, board="quick", max_violations=MAX_VIOLATIONS, progress=None,
                 seed=0, monitors=False):
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self.world = World(board, monitors)
        self.alphabet = self.world.alphabet
        self.stride = max(ticks_of(symbol) for symbol in self.alphabet)  # ticks, at most
        self.max_violations = max_violations
        self.progress = progress
        self.random = random.Random(seed)
        self.report = Report(depth, board, self.alphabet)
        self._plans = {}  # (input levels, reading) -> _groups()

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
        """Set the inputs, tick once, check with the oracle. False on a violation (recorded
        unless not `record`: the twin's and the merge checks' ticks)."""
        hw = rig.hw
        hw.levels.update(levels)
        hw.thermistor_uv, hw.spread_uv = reading
        sessions_was = rig.app.controller.sessions_ended
        self.probe.now_ms = now = rig.now_ms
        rig.tick()
        quiet(rig)
        bad = rig.oracle.check(now)
        if not record:
            self._last = observe(rig, sessions_was, bad)
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
        self._regime = Snapshots(world.period_ms, world.monitors, world.hottest_mc())
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
        self.snaps.configure(frozen, self._timestamps | self.probe.sites)
        self._frozen_contents = [(obj, content(obj)) for obj in frozen]
        report.shared = len(frozen)
        report.timestamps = sorted("%s.%s" % k for k in self._timestamps | self.probe.sites)

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
            now = content(obj)
            first = self._first.setdefault(id(obj), (obj, now))
            if first[1] != now:
                self._changed.add(id(obj))
        self.reps[key] = ((saved, self._twin_snaps.take(twin, False)[0]), path)
        self._queue.append(key)

    def _idle(self, pair, path, max_ticks):
        """Time passes, inputs unchanged, until the abstract state changes: adds the state
        after the change and the state LEAD ticks before it. Stops early where time alone can
        change nothing any more (_same_regime)."""
        rig, world, probe = self.rig, self.world, self.probe
        start = abstract(rig, world)
        inputs = effect(rig.hw.levels, reading_of(rig.hw), "wait", world)
        every = REGIME_MS // world.period_ms
        was = None  # the state at the start of the last regime window
        probe.open_window()
        try:
            for n in range(1, max_ticks + 1):
                if not self._step(rig, inputs[0], inputs[1], path + ("%s(%d)" % (IDLE, n),)):
                    return
                changed = abstract(rig, world)
                if changed != start:
                    break
                if n % every == 0:
                    window = probe.close_window()
                    now = self._regime.take(rig, False)[0]
                    if was is not None and self._same_regime(was, now, window):
                        self.report.idles_cut += 1
                        return
                    was = now
                    probe.open_window()
            else:
                return
        finally:
            probe.close_window()
        self._add(changed, path + ("%s(%d)" % (IDLE, n),), pair, [inputs] * n)
        near = (start, "before", changed)
        if n > LEAD and near not in self.reps:
            Snapshots.restore(pair[0])
            self._run(rig, [inputs] * (n - LEAD), path)
            self._add(near, path + ("%s(%d)" % (IDLE, n - LEAD),), pair, [inputs] * (n - LEAD))

    def _same_regime(self, was, now, window):
        """Time alone can change nothing any more: the state now and the state REGIME_MS ago
        have the same key for ever, ages as exact only up to the largest threshold they were
        compared with in between (`window`) and as "past" beyond it. What the key holds then
        decides what the next REGIME_MS do (as the merging assumes), and those are the last
        REGIME_MS over again: no comparison, no abstract state, no check, comes out otherwise.
        (The Rig is left as `now`.) Never where an age met a comparison the probe could not
        place (an unknown call site) or a hazard: there the key cannot say when it will cross."""
        if self.probe.hazards or any(site is None for site, _ in window):
            return False
        regime = self._regime
        regime.timestamps = self._timestamps | self.probe.sites
        regime.set_horizon(_Window(self.probe, window), REGIME_HORIZON)
        Snapshots.restore(was)
        key_was = regime.take(self.rig)[1]
        Snapshots.restore(now)
        return regime.take(self.rig)[1] == key_was

    def _compare_twins(self):
        """Leaf by leaf: timestamps differ by the offset, nothing else may."""
        a, b = leaves(self.rig), leaves(self.twin)
        shift = ticks_diff(TWIN_OFFSET_MS, 0)
        for path, (attribute, va) in a.items():
            vb = b.get(path, (None, MISSING))[1]
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
        while True:
            known = probe.signature()
            # An attribute a probed ticks_diff takes as its start is a timestamp too, where the
            # twin never saw it set (the oracle's ack, say: no abstract state of its own).
            self.snaps.timestamps |= probe.sites
            self.snaps.set_horizon(probe, self.depth * self.stride)
            self._search_all(known)
            if probe.signature() == known or self._stop():
                break
            # The probe saw a comparison phase 1 had not: merges so far may be wrong.
            report.restarts += 1
        for obj, was in self._frozen_contents:
            if content(obj) != was:
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
        rig, snaps, report, memo = self.rig, self.snaps, self.report, self.memo
        report.states += 1
        Snapshots.restore(saved)
        first = True
        for label, ticks in self._groups(rig.hw.levels, reading_of(rig.hw)):
            if not first:
                Snapshots.restore(saved)
            first = False
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

    def _groups(self, levels, reading):
        """[(label, ticks)]: the alphabet's symbols from inputs (`levels`, `reading`), those
        with the same effect on them as one (their label "a=b"), each with the inputs of its
        ticks (plan()). The same for the same inputs: worked out once."""
        key = (tuple(levels.values()), reading)
        found = self._plans.get(key)
        if found is None:
            groups = {}
            for symbol in self.alphabet:
                ticks = plan(levels, reading, symbol, self.world)
                groups.setdefault(tuple((tuple(lv.values()), r) for lv, r in ticks), []).append(
                    (symbol, ticks))
            found = self._plans[key] = [
                ("=".join(m[0] for m in members), members[0][1]) for members in groups.values()]
        return found

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

