"""Exhaustive exploration (issue 6, item 7; issue 14): every input sequence of 6 symbols from every
reachable abstract state of the real firmware, and every sequence of 3 of the monitors' symbols
(pauses of 1 to 100 ticks, 90 ticks of emission, a stuck or a warm reading, arm, reset), with the
safety oracle (tests/search/oracle.py) checked after every tick (docs/search.md: the alphabets,
the merging, what a pass proves).

These are make test's depths: 6 and 3 take about 49 s of CPU together (issue 17's make test ran
8 and 3, then 79 and 34 s; docs/search.md). The monitors' search stays at 3, where a warm step
after a pause and a stuck reading across a pause from any EMITTING state are within reach (the
hazard table's H08 and H09 rest on it). `make verify` runs the same searches deeper, 12 and 4
symbols (python tests/search), and `make explore` to any depth.

The other tests show that the search can fail: deliberately broken firmware (monkeypatched here,
for the test only) is caught with the input sequence that shows it, an absolute-time dependence
stops the exploration, and a merge key that leaves out something that matters is caught by the
merge checks."""

from array import array

import pytest
from controller import Controller
from footswitch import Footswitch
from search import abstraction
from search.alphabet import ALPHABET, MONITOR_ALPHABET
from search.boards import BOARDS
from search.explorer import ExplorationError, Explorer
from thermal import ThermalMonitor

DEPTH = 6  # make test's; make verify: 12
MONITOR_DEPTH = 3  # make test's; make verify: 4
INTERESTING = {"STANDBY", "READY", "EMITTING", "PAUSED", "COMPLETE", "FAULT"}


@pytest.fixture(scope="module")
def exploration():
    explorer = Explorer(depth=DEPTH, board="quick")
    report = explorer.run()
    print("\n" + "\n".join(report.lines()))  # shown with pytest -s
    return explorer, report


def test_no_invariant_is_violated_within_six_symbols_of_any_reachable_state(
        exploration, record_property):
    explorer, report = exploration
    for name in ("abstract_states", "roots", "states", "transitions", "merged", "sequences",
                 "ticks", "seconds"):
        record_property(name, getattr(report, name))
    assert report.violations == []
    # Every representative was searched to the full depth, by every symbol.
    assert report.depth == DEPTH
    assert report.roots == report.abstract_states == len(explorer.reps)
    per_root = sum(len(ALPHABET) ** k for k in range(DEPTH + 1))
    assert report.sequences == report.roots * per_root
    assert report.transitions >= report.states * 2


def test_the_exploration_reaches_every_state_and_several_fault_codes(exploration):
    explorer, report = exploration
    assert report.state_names >= INTERESTING
    # ... as representatives, so that the search starts DEPTH symbols deep from each of them.
    rep_states = {key[0][0] if key[1] == "before" else key[0] for key in explorer.reps}
    assert rep_states >= INTERESTING
    assert len(report.fault_codes) >= 3, report.fault_codes
    assert {"ESTOP", "THERMISTOR_OPEN"} <= report.fault_codes
    assert report.fault_codes & {"OVER_TEMP", "THERMISTOR_JUMP"}


def test_the_merging_held_up(exploration):
    _, report = exploration
    assert report.mismatches == []
    assert report.merge_checks >= 100
    # The timers were recognised: the quick board's emission delay and READY timeout are among
    # the thresholds its ages are compared with.
    thresholds = set().union(*report.thresholds.values())
    assert {1000, 5000} <= thresholds, report.thresholds
    # Nothing turned the age classes off (the search would still be right, but far slower):
    # see TimeProbe in tests/search/probe.py for what does.
    assert report.hazards == []


@pytest.fixture(scope="module")
def monitor_exploration():
    explorer = Explorer(depth=MONITOR_DEPTH, board="quick", monitors=True)
    report = explorer.run()
    print("\n" + "\n".join(report.lines()))
    return explorer, report


def test_no_rhythm_of_pauses_hides_a_monitors_evidence(monitor_exploration, record_property):
    """A stuck reading and a dead fan's rise are latched whatever pauses, arm or reset presses
    came between (issue 14: a pause used to restart the stuck and the runaway windows)."""
    explorer, report = monitor_exploration
    for name in ("abstract_states", "roots", "states", "transitions", "merged", "sequences",
                 "ticks", "seconds"):
        record_property("monitors_" + name, getattr(report, name))
    assert report.violations == []
    assert report.roots == report.abstract_states == len(explorer.reps)
    per_root = sum(len(MONITOR_ALPHABET) ** k for k in range(MONITOR_DEPTH + 1))
    assert report.sequences == report.roots * per_root
    # The stuck reading and the warm step are reached while emitting, and latched.
    rep_readings = {key[-2] for key in explorer.reps if key[1] != "before"}
    assert {"temp_stuck", "temp_warm"} <= rep_readings, rep_readings
    assert {"THERMISTOR_STUCK", "THERMAL_RUNAWAY"} <= report.fault_codes, report.fault_codes
    assert report.mismatches == []
    assert report.hazards == []


def _violations(monkeypatch, target, name, replacement, depth=2, monitors=False):
    monkeypatch.setattr(target, name, replacement)
    report = Explorer(depth=depth, board="quick", max_violations=1,
                              monitors=monitors).run()
    assert report.violations, "the broken firmware went unnoticed"
    return report.violations


def test_a_monitor_whose_evidence_a_pause_clears_is_caught(monkeypatch):
    """A thermal monitor that forgets its history whenever emission stops (what a pause did to
    the stuck and runaway windows before issue 14) is caught by the monitors' search."""
    original = ThermalMonitor.update
    board = BOARDS["quick"]

    def forgetful(self, samples, now_ms, heat_uw):
        if heat_uw == 0 and getattr(self, "heated", False):  # a pause: start afresh
            fresh = ThermalMonitor(board, now_ms)
            for attribute, value in vars(fresh).items():
                if isinstance(value, array):  # in place: the search keeps track of objects
                    getattr(self, attribute)[:] = value
                elif attribute != "sensor":
                    setattr(self, attribute, value)
        self.heated = heat_uw > 0
        return original(self, samples, now_ms, heat_uw)

    ((sequence, messages),) = _violations(monkeypatch, ThermalMonitor, "update", forgetful,
                                          depth=MONITOR_DEPTH, monitors=True)
    assert any("pause_" in symbol for symbol in sequence), sequence
    assert any("no THERMISTOR_STUCK" in m or "no fault" in m for m in messages), messages


def test_a_controller_that_ignores_the_estop_is_caught_at_once(monkeypatch):
    original = Controller._fault_cause

    def no_estop(self, inp, sensed_fault):
        cause = original(self, inp, sensed_fault)
        return None if cause == "ESTOP" else cause

    ((sequence, messages),) = _violations(monkeypatch, Controller, "_fault_cause", no_estop)
    assert sequence == ("estop",)
    assert "e-stop pressed in STANDBY" in messages


def test_a_footswitch_release_that_is_missed_is_caught_while_emitting(monkeypatch):
    original = Footswitch.read

    def sticky(self, no_closed, nc_closed, now_ms):
        was = self.pressed
        original(self, no_closed, nc_closed, now_ms)
        self.pressed = self.pressed or was  # a release no longer clears the press

    ((sequence, messages),) = _violations(monkeypatch, Footswitch, "read", sticky)
    assert any("EMITTING with footswitch not pressed" in m for m in messages), messages
    assert any("footswitch_up" in symbol for symbol in sequence), sequence


def test_a_supervisor_that_permits_anything_is_caught(monkeypatch):
    from supervisor import Supervisor

    original = Supervisor.veto

    def lenient(self, inp, out, fault_latched):
        original(self, inp, out, fault_latched)
        self.permitted = True
        return True

    ((sequence, messages),) = _violations(monkeypatch, Supervisor, "veto", lenient)
    assert any(m.startswith("supervisor permits emission with") for m in messages), messages


def test_firmware_state_that_depends_on_absolute_time_stops_the_exploration(monkeypatch):
    original = Controller.step

    def clocked(self, inp, dosimeter, out):
        original(self, inp, dosimeter, out)
        self.phase_ms = inp.t_ms % 1000  # absolute time kept in the state: no time shift

    monkeypatch.setattr(Controller, "step", clocked)
    with pytest.raises(ExplorationError, match="absolute-time dependence"):
        Explorer(depth=1, board="quick").run()


def test_a_merge_key_that_leaves_out_what_matters_is_caught_by_the_merge_checks(monkeypatch):
    # The fault code, the controller's and the oracle's copy (what the last tick latched).
    monkeypatch.setattr(abstraction, "KEY_LEAVES_OUT", abstraction.KEY_LEAVES_OUT | {
        ("Controller", "fault_code"), ("Oracle", "fault_code")})
    report = Explorer(depth=3, board="quick").run()
    assert report.mismatches


def _phase1(cut_idles):
    explorer = Explorer(depth=1, board="quick")
    if not cut_idles:
        explorer._same_regime = lambda was, now, window: False
    try:
        explorer.phase1()
    finally:
        explorer.probe.uninstall()
    return explorer


def test_cutting_an_idle_short_loses_no_state_and_no_comparison():
    """Phase 1 stops an idle where time alone changes nothing any more (docs/search.md, "The
    search"): with the cut and without it, the same abstract states and the same comparisons of
    ages seen by the probe, in fewer ticks."""
    cut, full = _phase1(True), _phase1(False)
    assert cut.report.idles_cut > 0 and full.report.idles_cut == 0
    assert set(cut.reps) == set(full.reps)
    assert cut.probe.signature() == full.probe.signature()
    assert cut.report.phase1_ticks < full.report.phase1_ticks
