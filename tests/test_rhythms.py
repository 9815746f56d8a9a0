"""Operator rhythms and plant faults against the physical truth (issue 14).

The monitors' evidence must survive whatever the operator does: a hypothesis property draws the
operator's RHYTHM (the pedal pressed P ms and released Q ms, P and Q from one tick to tens of
seconds on a log scale, or at the debounce edge; arm, reset and ack pressed periodically in every
state, during emission too; serial requests; key, interlock and e-stop events) together with
PLANT FAULTS injected at a drawn time (a stuck thermistor, a dead fan, an aged, overdriven or
slightly bright diode, a driver enable stuck high, the dose-count bug of the state machine, late
ticks, a broken footswitch contact), and runs the real App on the plant of
tests/firmware/plant.py. Besides the rhythm, a goal-directed operator arms in STANDBY, acknowledges
COMPLETE, and acknowledges and resets a FAULT, so that every scenario treats.

Checked at EVERY tick against the plant's truth (Judge):

- light only in EMITTING, and only with every permission: key on, interlock closed, no e-stop,
  the pedal pressed on both contacts;
- no light with the true heatsink at or above shutdown_c (a frozen sensor may let it pass by the
  heat of stuck_s + 1 s of emission, the time the firmware has to notice);
- a session's light (arm to the end, the plant's integral with the gate's real phase) is at most
  the target + half a tick at the counted power + (hardware-gated pulses) one pulse at the peak +
  the lateness of late ticks at the peak; the light of a BUDGET session (the supervisor's: from a
  light-on after an arm press seen in the dark and the emission delay of darkness, to the next
  such) at most the supervisor's budget + a tick at the peak + the lateness; both times the
  diode's light factor, if it shines brighter than calibrated. With the dose-count bug only the
  budget applies;
- the dose the firmware counts is the light that went out (to 2 mJ; hardware-gated pulses: never
  less, at most 1 % more), once the light is off, while the diode is its calibrated self;
- a session that ends in a tick that also latches a fault ends FAULT;
- every injected fault latched within its bound: a frozen thermistor THERMISTOR_STUCK within
  stuck_s + 1 s of emission (the ticks the state machine commands heat, pauses left out); an
  enable stuck high ENABLE_STUCK within 2 ticks of the first tick it can be seen (at once unless
  the enable is driven high steadily: CW emission); a diode off by 30 % OUTPUT_POWER_DEVIATION
  within two power-monitor windows of lit ticks; a broken footswitch contact FOOTSWITCH_FAULT
  once the contacts disagreed for the mismatch window in all since the pedal was last up on
  both; and the runaway rule (RunawayOracle) latched within 2 s wherever the heatsink rose more
  than the heat the diode was given can explain, paused or not.

HOLES holds one deterministic scenario per hole the issue found (the regression tests); each
failed on the firmware before its fix. The property's example count comes from the hypothesis
profile (tests/conftest.py: `make verify` runs ten times more)."""

import math

import pytest
import treatment as treatment_module
from hypothesis import given, settings
from hypothesis import strategies as st
from plant import Plant, break_dose_count
from records import ACK, ARM, DISARM, RESET
from support import Rig
from test_state_machine import BOARDS
from thermal import DERATE_STEPS

TREATMENTS = {
    "cw15": {"power_w": 15.0, "dose_j_cm2": 20.0, "area_cm2": 100.0},  # 2000 J: 133 s
    "cw10": {"power_w": 10.0, "dose_j_cm2": 1.0, "area_cm2": 100.0},  # 100 J: 10 s
    "cw10_short": {"power_w": 10.0, "dose_j_cm2": 1.0, "area_cm2": 10.0},  # 10 J: 1 s
    # Hardware-gated pulses whose period does not divide the tick, and one that does.
    "hw150": {"power_w": 2.0, "dose_j_cm2": 1.0, "area_cm2": 10.0, "mode": "pulsed",
              "pulse_hz": 150, "duty_pct": 25},
    "hw110": {"power_w": 1.0, "dose_j_cm2": 0.2, "area_cm2": 10.0, "mode": "pulsed",
              "pulse_hz": 110, "duty_pct": 10},
    "hw1000": {"power_w": 3.0, "dose_j_cm2": 1.0, "area_cm2": 30.0, "mode": "pulsed",
               "pulse_hz": 1000, "duty_pct": 25},
    # Slow pulses the loop gates itself, in whole ticks.
    "loop10": {"power_w": 5.0, "dose_j_cm2": 2.0, "area_cm2": 10.0, "mode": "pulsed",
               "pulse_hz": 10, "duty_pct": 50},
}
BUTTONS = ("arm", "reset", "ack")
COMMANDS = {"arm": ARM, "disarm": DISARM, "ack": ACK, "reset": RESET}
EVENTS = ("key_off", "interlock_open", "estop")
LIGHT_FACTORS = {"aged": 0.7, "overdriven": 1.3, "bright": 1.05}
FAULTS = ("stuck", "fan", "enable_stuck", "dose_bug", "nc_broken", "no_stuck") + tuple(
    sorted(LIGHT_FACTORS))
HEATSINK_EPS_C = 0.02  # the thermistor grid's interpolation, rounded microvolts
COUNT_TOLERANCE_MJ = 2
ORACLE_MARGIN_C = 0.4  # the runaway rule's excess the oracle requires before it insists
ORACLE_DEADLINE_MS = 2000
FIRMWARE_FAILURES = ("SOFTWARE", "OUT_OF_MEMORY")


class Scenario:
    """One operator and one plant, all of it (hypothesis draws these; HOLES writes them out).

    pedal: (press_ms, release_ms), repeated from when READY's emission delay is over (and
    `think_ms`); None: pressed then and held. buttons: ((name, period_ms, hold_ms, phase_ms),
    ...) pressed periodically whatever the state; serial: ((command, period_ms, phase_ms), ...);
    events: ((kind, at_ms, duration_ms), ...); faults: ((kind, at_ms), ...); late: (at_ms,
    duration_ms, delay_ms): the ticks in that time apply their outputs delay_ms late (and the
    next tick waits for them, an overrun the loop counts, if that is a tick or more)."""

    FIELDS = ("board", "treatment", "ambient_c", "heatsink_c", "run_s", "pedal", "buttons",
              "serial", "events", "faults", "late", "think_ms")

    def __init__(self, board="sim", treatment="cw10", ambient_c=25.0, heatsink_c=None, run_s=30,
                 pedal=None, buttons=(), serial=(), events=(), faults=(), late=None,
                 think_ms=200):
        self.board, self.treatment = board, treatment
        self.ambient_c, self.heatsink_c, self.run_s = ambient_c, heatsink_c, run_s
        self.pedal, self.buttons, self.serial = pedal, tuple(buttons), tuple(serial)
        self.events, self.faults, self.late = tuple(events), tuple(faults), late
        self.think_ms = think_ms

    def __repr__(self):
        return "Scenario(%s)" % ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.FIELDS)


class Violation(AssertionError):
    pass


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


class Trial:
    """One scenario, run tick by tick with every check (Judge's) after each."""

    def __init__(self, sc):
        self.sc = sc
        self.board = board = BOARDS[sc.board]
        self.period_ms = board["loop_ms"]
        self.timing = board["timing"]
        self.thermal = board["thermal"]
        self.plant = plant = Plant(board, sc.ambient_c, sc.heatsink_c)
        self.rig = rig = Rig(board=board, spec=False, hw=plant, temp_c=plant.heatsink_c)
        self.t = treatment_module.for_board(TREATMENTS[sc.treatment], board)
        rig.app.select(self.t, None)
        rig.treatment = self.t
        plant.levels["key_on"] = True
        self.cal_peak_w = plant.calibration.watts(self.t.duty_u16)
        self.gated = bool(self.t.pulse_hz and not self.t.gate_period_ms)
        self.pulse_mj = (1000.0 / self.t.pulse_hz * self.t.gate_duty_u16 / 65536
                         * self.cal_peak_w) if self.gated else 0.0
        self.half_tick_mj = self.t.power_uw_steps[DERATE_STEPS] * self.period_ms / 2e6
        budget_mj = (self.t.target_mj * 1010 // 1000
                     + int(board["diode"]["max_power_w"] * self.period_ms * 2 + 0.5))
        self.budget_mj = budget_mj
        self.start_ms = rig.now_ms
        self.state = rig.state
        self.entered_ms = 0
        self.anchor_ms = None  # when the pedal's rhythm began (READY's delay over)
        self.bug = False
        self.applied = set()  # indices of the faults and events applied
        self.serial_next = [phase for _, _, phase in sc.serial]
        self.log = []  # a few lines for the failure message
        self.judge = Judge(self)

    def run(self):
        rig, sc = self.rig, self.sc
        end_ms = sc.run_s * 1000
        t_ms = 0
        while t_ms < end_ms:
            delay = self._late(t_ms)
            before = self.judge.before()
            self._inject(t_ms)
            self._operate(t_ms)
            self.plant.actuate_delay_ms = delay
            rig.app.step(rig.now_ms)
            self.plant.actuate_delay_ms = 0
            if self.bug and not getattr(rig.app.controller, "dose_count_broken", False):
                break_dose_count(rig.app.controller)  # a failed tick made a fresh controller
            interval = max(self.period_ms, delay)
            self.judge.after(t_ms, before, delay + interval - self.period_ms)
            state = rig.state
            if state != self.state:
                self.state, self.entered_ms = state, t_ms
                self.note(t_ms, "-> %s" % state)
            rig.now_ms += interval
            t_ms += interval
            if delay >= self.period_ms:  # the loop's overrun: it may fault LOOP_OVERRUN
                self.plant.sync(rig.now_ms)
                rig.app.overran(rig.now_ms)
        return self

    def note(self, t_ms, what):
        self.log.append("%.2f s %s" % (t_ms / 1000, what))
        del self.log[:-12]

    # -- the plant's faults, the scenario's events, late ticks ------------------------------------

    def _late(self, t_ms):
        late = self.sc.late
        if late is not None and late[0] <= t_ms < late[0] + late[1]:
            return late[2]
        return 0

    def _inject(self, t_ms):
        plant = self.plant
        for i, (kind, at_ms) in enumerate(self.sc.faults):
            if at_ms > t_ms or i in self.applied:
                continue
            self.applied.add(i)
            self.note(t_ms, "fault %s" % kind)
            if kind == "stuck":
                plant.freeze_sensor()
                self.judge.stuck_since(t_ms)
            elif kind == "fan":
                plant.fan = False
            elif kind in LIGHT_FACTORS:
                plant.set_light_factor(LIGHT_FACTORS[kind])
                self.judge.light_changed(kind)
            elif kind == "enable_stuck":
                plant.stick_enable()
                self.judge.enable_stuck_since(t_ms)
            elif kind == "dose_bug":
                self.bug = True
                break_dose_count(self.rig.app.controller)
            else:
                self.judge.contact = kind

    # -- the operator -----------------------------------------------------------------------------

    def _operate(self, t_ms):
        sc, lv = self.sc, self.plant.levels
        for name, level in (("key_on", True), ("interlock_closed", True), ("estop_pressed", False)):
            lv[name] = level
        for kind, at_ms, duration_ms in sc.events:
            if at_ms <= t_ms < at_ms + duration_ms:
                name = {"key_off": "key_on", "interlock_open": "interlock_closed"}.get(
                    kind, "estop_pressed")
                lv[name] = kind == "estop"
        state, since = self.state, t_ms - self.entered_ms
        if state == "READY" and self.anchor_ms is None and \
                since >= self.timing["emission_delay_ms"] + sc.think_ms:
            self.anchor_ms = t_ms
        if state in ("STANDBY", "COMPLETE", "FAULT"):
            self.anchor_ms = None
        pressed = False
        if self.anchor_ms is not None:
            if sc.pedal is None:
                pressed = True
            else:
                press_ms, release_ms = sc.pedal
                pressed = (t_ms - self.anchor_ms) % (press_ms + release_ms) < press_ms
        no_closed, nc_closed = pressed, not pressed
        if self.judge.contact == "nc_broken":
            nc_closed = False
        elif self.judge.contact == "no_stuck":
            no_closed = True
        lv["footswitch_no_closed"], lv["footswitch_nc_closed"] = no_closed, nc_closed
        # The buttons: the goal-directed operator's, then the rhythm's.
        think = sc.think_ms
        goal = {"arm": state == "STANDBY" and since >= think and (since - think) % 3000 < 50,
                "ack": state in ("COMPLETE", "FAULT") and 0 <= since - think < 50,
                "reset": state == "FAULT" and since >= 2 * think
                and (since - 2 * think) % 2000 < 50}
        for name in BUTTONS:
            lv[name + "_pressed"] = goal[name]
        for name, period_ms, hold_ms, phase_ms in sc.buttons:
            if t_ms >= phase_ms and (t_ms - phase_ms) % period_ms < hold_ms:
                lv[name + "_pressed"] = True
        for i, (command, period_ms, _) in enumerate(sc.serial):
            if t_ms >= self.serial_next[i]:
                self.plant.command = COMMANDS[command]
                self.serial_next[i] += period_ms * ((t_ms - self.serial_next[i]) // period_ms + 1)


class Judge:
    """Every check, after every tick, against the plant (see the module docstring)."""

    def __init__(self, trial):
        self.trial = trial
        board = trial.board
        self.ctl = None  # the state machine's session: arm to the next arm
        self.budget = Account(trial.plant, 0)  # the supervisor's: from boot to a new budget
        self.dark_arm_ms = None  # the first arm press seen in the dark since the light went off
        self.stuck_ms = None  # emission ms with the sensor frozen, since it froze or latched
        self.enable_stuck = None  # (since ms, deadline tick or None) of a stuck enable
        self.ticks = 0
        self.light_kind = None  # a light factor the power monitor must see
        self.lit_ticks = 0
        monitor = board.get("power_monitor")
        self.monitor_ticks = (2 * max(1, monitor["window_ms"] // trial.period_ms) + 2
                              if monitor else None)
        self.contact = None  # a broken footswitch contact
        self.mismatch_ms = 0
        self.disagreed = False
        self.oracle = RunawayOracle(trial.thermal)
        self.heat_last = False  # the state machine commanded heat last tick
        sensor = trial.plant.sensor
        self.shutdown_c = trial.thermal["shutdown_c"]
        self.shutdown_uv = int(sensor.uv_at(self.shutdown_c))
        stuck_j = (trial.plant.heat_w_at(trial.t.duty_u16) * (trial.thermal["stuck_s"] + 1)
                   + trial.plant.heat_w_at(trial.t.duty_u16) * trial.plant._r_junction
                   * trial.plant._c_junction)
        self.stuck_margin_c = stuck_j / trial.plant._c_heatsink

    def stuck_since(self, t_ms):
        self.stuck_ms = 0
        self.oracle.forget()

    def enable_stuck_since(self, t_ms):
        self.enable_stuck = [t_ms, None]

    def light_changed(self, kind):
        if abs(LIGHT_FACTORS[kind] - 1.0) < 0.2:
            # The latest factor is the diode's: one drawn at the same instant as an aged or
            # overdriven one replaces it, and a diode 5 % off owes no OUTPUT_POWER_DEVIATION.
            self.light_kind = None
        elif self.monitor_ticks is not None:
            self.light_kind, self.lit_ticks = kind, 0

    def before(self):
        trial = self.trial
        plant, c = trial.plant, trial.rig.app.controller
        return (dict(plant.levels), plant.enable and not plant.gate_hz, plant.enable,
                c.sessions_ended, trial.rig.state)

    def fail(self, t_ms, what):
        trial = self.trial
        c = trial.rig.app.controller
        raise Violation("%s\n  at %.2f s, state %s, fault %s, true heatsink %.2f C, emitted "
                        "%.3f J\n  %s\n  recent: %s" % (
                            what, t_ms / 1000, trial.rig.state, c.fault_code,
                            trial.plant.sensed_c, trial.plant.emitted_j, trial.sc,
                            "; ".join(trial.log)))

    def after(self, t_ms, before, late_ms):
        trial = self.trial
        plant, rig = trial.plant, trial.rig
        app = rig.app
        c, sup = app.controller, app.supervisor
        levels_was, steady_was, light_was, sessions_was, state_was = before
        lv = plant.levels
        state = rig.state
        self.ticks += 1
        if c.fault_code in FIRMWARE_FAILURES:
            self.fail(t_ms, "the firmware failed: %s" % (rig.lines[-1:],))
        lit = plant.lit()
        # Every permission, every tick.
        if lit:
            missing = [why for why, bad in (
                ("key off", not lv["key_on"]), ("interlock open", not lv["interlock_closed"]),
                ("e-stop pressed", lv["estop_pressed"]),
                ("pedal not pressed on both contacts",
                 not lv["footswitch_no_closed"] or lv["footswitch_nc_closed"]),
                ("state %s" % state, state != "EMITTING")) if bad]
            if missing:
                self.fail(t_ms, "light with %s" % ", ".join(missing))
            limit = self.shutdown_c + HEATSINK_EPS_C
            if plant.frozen_uv is not None:
                limit += self.stuck_margin_c
            if plant.sensed_c >= limit:
                self.fail(t_ms, "light with the true heatsink at %.2f C (limit %.2f C)"
                          % (plant.sensed_c, limit))
        # A fault always wins.
        if c.sessions_ended != sessions_was and state == "FAULT" and c.session_end != "FAULT":
            self.fail(t_ms, "a session ended %s in the tick that latched %s"
                      % (c.session_end, c.fault_code))
        self._sessions(t_ms, state, state_was, levels_was, light_was, lit, late_ms)
        self._monitors(t_ms, state, c, sup, levels_was, steady_was, lit)

    def _sessions(self, t_ms, state, state_was, levels_was, light_was, lit, late_ms):
        trial = self.trial
        plant, app, t = trial.plant, trial.rig.app, trial.t
        lv = plant.levels
        if state == "READY" and state_was != "READY":
            self.ctl = Account(plant, t_ms)
        # The supervisor's budget sessions, as the contract defines them.
        arm = (lv["arm_pressed"] and not levels_was["arm_pressed"]) or \
            app.inputs.command == ARM
        if arm and not light_was and self.dark_arm_ms is None:
            self.dark_arm_ms = t_ms
        if plant.enable and not light_was:
            if self.dark_arm_ms is not None and \
                    t_ms - self.dark_arm_ms >= trial.timing["emission_delay_ms"]:
                self.budget = Account(plant, t_ms)
                trial.note(t_ms, "budget session")
            self.dark_arm_ms = None
        elif plant.enable:
            self.dark_arm_ms = None
        for account in (self.ctl, self.budget):
            if account is not None:
                account.saw(plant, trial.bug, late_ms)
        peak_w = trial.cal_peak_w
        ctl = self.ctl
        if ctl is not None and not ctl.bug:
            bound = ctl.factor * (t.target_mj + self._extra_mj(ctl, peak_w)
                                  + trial.half_tick_mj + trial.pulse_mj) + COUNT_TOLERANCE_MJ
            if ctl.mj(plant) > bound:
                self.fail(t_ms, "the session since %.2f s emitted %.1f mJ: beyond the target "
                          "%d mJ + its bound (%.1f mJ)"
                          % (ctl.t_ms / 1000, ctl.mj(plant), t.target_mj, bound))
        budget = self.budget
        bound = budget.factor * (trial.budget_mj + self._extra_mj(budget, peak_w)
                                 + trial.period_ms * peak_w) + COUNT_TOLERANCE_MJ
        if budget.mj(plant) > bound:
            self.fail(t_ms, "the budget session since %.2f s emitted %.1f mJ: beyond the "
                      "supervisor's budget %d mJ + a tick (%.1f mJ)"
                      % (budget.t_ms / 1000, budget.mj(plant), trial.budget_mj, bound))
        # The count is the light that went out.
        if ctl is not None and ctl.calibrated and not lit:
            true_mj, counted = ctl.mj(plant), app.dosimeter.energy_mj
            low = true_mj - COUNT_TOLERANCE_MJ
            high = true_mj * (1.01 if trial.gated else 1.0) + COUNT_TOLERANCE_MJ
            if not low <= counted <= high:
                self.fail(t_ms, "the firmware counted %d mJ where %.1f mJ went out"
                          % (counted, true_mj))

    def _extra_mj(self, account, peak_w):
        """Light beyond the count's own bound: late ticks, and a stuck enable under a hardware
        gate until its bound (the peak instead of the average)."""
        stuck = 2 * self.trial.period_ms if account.stuck and self.trial.gated else 0
        return (account.late_ms + stuck) * peak_w

    def _monitors(self, t_ms, state, c, sup, levels_was, steady_was, lit):
        trial = self.trial
        plant, t = trial.plant, trial.t
        step = c.thermal.derate_step
        heat = state == "EMITTING" and t.duty_steps[step] != 0
        interval = trial.period_ms
        # A frozen thermistor: stuck_s of emission (pauses left out) + 1 s.
        if self.stuck_ms is not None:
            if c.fault_code == "THERMISTOR_STUCK":
                self.stuck_ms = 0
            elif self.heat_last:
                self.stuck_ms += interval
                if self.stuck_ms > (trial.thermal["stuck_s"] + 1) * 1000:
                    self.fail(t_ms, "the thermistor froze and %.2f s of emission later no "
                              "THERMISTOR_STUCK" % (self.stuck_ms / 1000))
        self.heat_last = heat
        # An enable stuck high: seen at once unless the enable is driven high steadily.
        if self.enable_stuck is not None:
            latched = sup.trip == "ENABLE_STUCK" or c.fault_code == "ENABLE_STUCK"
            since = self.enable_stuck
            if latched:
                self.enable_stuck = None
            elif not steady_was and since[1] is None:
                since[1] = self.ticks + 1
            if not latched and since[1] is not None and self.ticks >= since[1]:
                self.fail(t_ms, "the enable stuck high at %.2f s, visible since tick %d, and "
                          "no ENABLE_STUCK 2 ticks later" % (since[0] / 1000, since[1] - 1))
        # A diode 30 % off: two windows of lit ticks.
        if self.light_kind is not None:
            if c.fault_code in ("OUTPUT_POWER_DEVIATION", "LIGHT_OVER_LIMIT") or \
                    sup.trip == "LIGHT_OVER_LIMIT":
                self.light_kind = None
            elif lit:
                self.lit_ticks += 1
                if self.lit_ticks > self.monitor_ticks:
                    self.fail(t_ms, "the diode is %s and %d lit ticks later no "
                              "OUTPUT_POWER_DEVIATION" % (self.light_kind, self.lit_ticks))
        # A broken footswitch contact: the disagreement adds up until both say "up".
        lv = plant.levels
        if self.disagreed:
            self.mismatch_ms += interval
        self.disagreed = lv["footswitch_no_closed"] == lv["footswitch_nc_closed"]
        if lv["footswitch_nc_closed"] and not lv["footswitch_no_closed"]:
            self.mismatch_ms = 0
        if self.mismatch_ms > trial.timing["footswitch_mismatch_ms"] + 2 * interval and \
                state != "FAULT":
            self.fail(t_ms, "the footswitch contacts disagreed for %d ms since last up on both "
                      "and no fault" % self.mismatch_ms)
        # The runaway rule.
        if plant.frozen_uv is None:
            oracle = self.oracle
            oracle.tick(t_ms, plant.sensed_c, t.heat_uw_steps[step] / 1e6 if heat else 0.0, heat)
            if oracle.due_ms is not None:
                if state == "FAULT":
                    oracle.due_ms = None
                elif t_ms > oracle.due_ms:
                    self.fail(t_ms, "the heatsink rose %.2f C beyond what the heat given can "
                              "explain, and no fault %d ms later"
                              % (oracle.excess_c, ORACLE_DEADLINE_MS))


# -- the property --------------------------------------------------------------------------------


def _log_ms(low_ms, high_ms):
    return st.floats(math.log10(low_ms), math.log10(high_ms)).map(lambda x: int(10 ** x))


@st.composite
def scenarios(draw, treatments=None, faults=FAULTS, late=True):
    """Scenarios; narrowed (treatments, faults, late ticks or none) to aim at one hole."""
    board = draw(st.sampled_from(("sim", "sim", "quick")))
    timing = BOARDS[board]["timing"]
    run_s = draw(st.integers(5, 150))
    run_ms = run_s * 1000
    debounce = timing["footswitch_debounce_ms"]
    edge = st.sampled_from(tuple(max(10, debounce + d) for d in (-10, 0, 10, 20)))
    pedal = draw(st.none() | st.tuples(edge | _log_ms(10, 30000), _log_ms(10, 30000)))
    ambient = draw(st.sampled_from((15.0, 25.0, 30.0, BOARDS[board]["thermal"]["max_ambient_c"])))
    # The heatsink from the room's temperature up to just below shutdown (a warm start brings
    # the derating and the monitors' limits within a scenario's minutes).
    heatsink = draw(st.sampled_from((0.0, 10.0, 15.0, 17.0, 19.0, 19.5)).map(
        lambda above: min(44.5, ambient + above)))
    at = st.just(0) | st.integers(0, run_ms)
    buttons = draw(st.lists(st.tuples(st.sampled_from(BUTTONS), _log_ms(200, 30000),
                                      st.sampled_from((10, 50, 150)), at), max_size=2))
    return Scenario(
        board=board, treatment=draw(st.sampled_from(treatments or sorted(TREATMENTS))),
        ambient_c=ambient,
        heatsink_c=heatsink, run_s=run_s, pedal=pedal,
        buttons=buttons,
        serial=draw(st.lists(st.tuples(st.sampled_from(sorted(COMMANDS)),
                                       _log_ms(100, 30000), at), max_size=1)),
        events=draw(st.lists(st.tuples(st.sampled_from(EVENTS), at, _log_ms(10, 5000)),
                             max_size=2)),
        faults=draw(st.lists(st.tuples(st.sampled_from(faults), at), max_size=2) if faults
                    else st.just(())),
        late=draw(st.none() | st.tuples(at, _log_ms(10, 3000), st.sampled_from((3, 8, 15, 25)))
                  if late else st.none()),
        think_ms=draw(st.sampled_from((0, 100, 500, 2000))))


@settings(max_examples=max(1, settings.default.max_examples // 2))
@given(sc=scenarios())
def test_no_rhythm_or_plant_fault_defeats_a_safety_check(sc):
    Trial(sc).run()


# -- the holes of issue 14, one scenario each ------------------------------------------------------

HOLES = {
    # 1. The dose-count bug, and arm pressed every 3 s during emission: each press restarted the
    #    supervisor's budget, and the light ran on far beyond it.
    "1-budget-rearmed": Scenario(treatment="cw10", run_s=40, faults=(("dose_bug", 0),),
                                 buttons=(("arm", 3000, 50, 5000),)),
    # 2. A frozen thermistor in a 35 C room, the pedal lifted for 0.5 s every 4 s: each resume
    #    restarted the stuck window.
    "2-stuck-sensor-paused": Scenario(treatment="cw15", ambient_c=35.0, run_s=30,
                                      pedal=(4000, 500), faults=(("stuck", 3000),)),
    # 3. A dead fan in a 35 C room, the pedal lifted for 0.3 s every 10 s: each pause reset the
    #    runaway window, and THERMAL_RUNAWAY never came.
    "3-dead-fan-paused": Scenario(treatment="cw15", ambient_c=35.0, heatsink_c=41.0, run_s=150,
                                  pedal=(10000, 300), faults=(("fan", 0),)),
    # 4. 110 Hz hardware-gated pulses, the pedal chattering: each resume restarts the gate HIGH,
    #    and the count of the average missed the light of the first period.
    "4-gated-pulses-chatter": Scenario(treatment="hw110", run_s=20, pedal=(30, 10)),
    # 5. (Found by test_no_rhythm_or_plant_fault_defeats_a_safety_check in issue 17's session.)
    #    The dose-count bug, the pedal pressed 0.93 s and lifted 3.16 s, an arm command every
    #    10 s: an arm during a pause, the pedal pressed again 1.2 s later, restarted the
    #    supervisor's budget, because its delay ran from the light going off, not from the arm.
    "5-budget-rearmed-in-a-pause": Scenario(treatment="cw10", ambient_c=15.0, heatsink_c=15.0,
                                            run_s=100, pedal=(933, 3162),
                                            serial=(("arm", 10000, 0),),
                                            faults=(("dose_bug", 0),)),
    # 7. The driver's enable stuck high during 1 kHz hardware-gated pulses: unseen while they ran.
    "7-enable-stuck-gated": Scenario(treatment="hw1000", run_s=12, faults=(("enable_stuck",
                                                                            5000),)),
    # 8. Ticks 8 ms late at the end of a session: the light of the lateness went out uncounted ...
    "8-late-ticks-uncounted": Scenario(treatment="cw10_short", run_s=6, late=(3000, 3000, 8)),
    # ... and a supervisor trip in the tick the key turned off ended the session KEY_OFF.
    "8-trip-and-key-off": Scenario(treatment="cw10", run_s=6, think_ms=0,
                                   events=(("key_off", 1000, 500),),
                                   faults=(("enable_stuck", 1000),)),
    # The rule's review: a broken NC contact and a rhythm that never shows the pedal up on both
    # contacts for long: the disagreement used to start again at every press.
    "footswitch-mismatch-rhythm": Scenario(treatment="cw10", run_s=20, pedal=(400, 40),
                                           faults=(("nc_broken", 4000),)),
}


@pytest.mark.parametrize("name", sorted(HOLES))
def test_no_hole_of_issue_14_reopens(name):
    Trial(HOLES[name]).run()
