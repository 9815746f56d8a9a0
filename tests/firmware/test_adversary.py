# The holes an attacker found with ordinary operator rhythms and wiring mistakes (issue 14), one
# regression test each: every one failed on the firmware before the fix. The rule they hold is
# docs/hazards.md's: no operator action (pedal, arm, reset, ack, a serial request) resets a
# monitor's evidence. Runs on CPython and on MicroPython: plain asserts, no pytest.
from support import Rig

PULSED_150HZ = {"power_w": 5.0, "dose_j_cm2": 2.0, "area_cm2": 50.0, "mode": "pulsed",
                "pulse_hz": 150, "duty_pct": 50}
PULSED_5KHZ = {"power_w": 3.0, "dose_j_cm2": 2.0, "area_cm2": 50.0, "mode": "pulsed",
               "pulse_hz": 5000, "duty_pct": 25}


def _fault(rig):
    events = rig.events("fault")
    return events[-1]["code"] if events else None


def _hold(rig, ms, pressed):
    """The pedal down (or up) for `ms`; stops early on a fault. Returns whether it faulted."""
    rig.hw.press_footswitch(pressed)
    for _ in range(ms // rig.period_ms):
        rig.tick()
        if rig.state == "FAULT":
            return True
    return False


def _budget_mj(rig):
    t = rig.treatment
    return t.target_mj * 101 // 100 + 2 * rig.period_ms * rig.board["diode"]["max_power_w"]


def test_arm_pressed_during_emission_does_not_renew_the_supervisors_budget():
    # The state machine's dose stop broken (what the budget exists for), arm pressed every 3 s
    # and once near the end: the state machine ignores arm while emitting, and so must the
    # second channel.
    rig = Rig(dose_j_cm2=1.0, area_cm2=100.0)  # 100 J at 10 W: 10 s
    rig.start_emitting()
    rig.app.controller._dose_reached = lambda dosimeter: False
    tick_mj = 10 * rig.period_ms
    for i in range(4000):
        if i % 300 == 0 or i == 960:
            rig.set(arm_pressed=True)
            rig.set(arm_pressed=False)
        rig.tick()
        if rig.state == "FAULT":
            break
    assert rig.state == "FAULT" and _fault(rig) == "DOSE_BUDGET", (rig.state, _fault(rig))
    assert rig.app.dosimeter.energy_mj <= _budget_mj(rig) + tick_mj, rig.app.dosimeter.energy_mj
    assert rig.events("session")[-1]["end"] == "FAULT"


def test_a_new_session_after_the_emission_delay_in_the_dark_gets_a_new_budget():
    # The other side of the rule: a real second session is not stopped by the first's budget.
    rig = Rig(dose_j_cm2=1.0, area_cm2=20.0)  # 20 J at 10 W: 2 s
    for _ in range(2):
        rig.start_emitting()
        rig.run_ms(2500)
        assert rig.state == "COMPLETE", rig.state
        rig.hw.press_footswitch(False)
        rig.press("ack_pressed")
        assert rig.state == "STANDBY"
    assert [e["end"] for e in rig.events("session")] == ["COMPLETE", "COMPLETE"]


def test_a_frozen_reading_is_caught_whatever_the_pedals_rhythm():
    # The pedal lifted for 0.3 s every 4 s used to restart the stuck-reading window at each
    # resume: the frozen value then blinded every thermal check for the whole treatment.
    rig = Rig(dose_j_cm2=8.0, area_cm2=100.0)  # 800 J at 10 W: 80 s
    rig.start_emitting()
    rig.hw.spread_uv = 0  # the ADC returns one value from now on
    frozen_at_ms = rig.app.dosimeter.emitting_ms
    faulted = False
    for _ in range(20):
        if _hold(rig, 4000, True) or _hold(rig, 300, False):
            faulted = True
            break
    assert faulted and _fault(rig) == "THERMISTOR_STUCK", _fault(rig)
    emission_ms = rig.app.dosimeter.emitting_ms - frozen_at_ms
    stuck_ms = rig.board["thermal"]["stuck_s"] * 1000
    assert stuck_ms <= emission_ms <= stuck_ms + 2 * rig.period_ms, emission_ms


def test_a_reset_does_not_clear_a_frozen_readings_evidence():
    rig = Rig(dose_j_cm2=8.0, area_cm2=100.0)
    rig.start_emitting()
    rig.hw.spread_uv = 0
    _hold(rig, 6000, True)
    assert _fault(rig) == "THERMISTOR_STUCK"
    rig.hw.press_footswitch(False)
    rig.run_ms(1000)
    rig.press("reset_pressed")  # valid and cool, but still one value: the cause persists
    assert rig.state == "FAULT"
    rig.hw.spread_uv = 1000  # the sensor lives again (its samples differ)
    rig.tick()
    rig.press("reset_pressed")
    assert rig.state == "STANDBY"
    rig.start_emitting()
    rig.run_ms(1000)
    assert rig.state == "EMITTING"


def test_the_supervisor_catches_a_frozen_reading_on_its_own():
    # The thermal monitor's stuck check broken: the second channel sees the frozen samples
    # itself, a second of emission later, through the same pedal rhythm.
    rig = Rig(dose_j_cm2=8.0, area_cm2=100.0)
    rig.start_emitting()
    rig.app.controller.thermal._stuck = lambda samples, emitting_ms: False
    rig.hw.spread_uv = 0
    frozen_at_ms = rig.app.dosimeter.emitting_ms
    for _ in range(20):
        if _hold(rig, 4000, True) or _hold(rig, 300, False):
            break
    assert _fault(rig) == "THERMISTOR_STUCK" and rig.app.supervisor.trip == "THERMISTOR_STUCK"
    emission_ms = rig.app.dosimeter.emitting_ms - frozen_at_ms
    limit_ms = rig.board["thermal"]["stuck_s"] * 1000 + 1000
    assert limit_ms <= emission_ms <= limit_ms + 2 * rig.period_ms, emission_ms


def test_a_dead_fan_is_caught_whatever_the_pedals_rhythm():
    # The heatsink rises faster than the diode's heat and a working fan explain (as in T33), and
    # the pedal is lifted for 0.3 s every 15 s: each pause used to restart the runaway window.
    rig = Rig(dose_j_cm2=8.0, area_cm2=100.0)
    rig.start_emitting()
    temp_c = 25.0
    for _ in range(10):
        for _ in range(1500 // rig.period_ms * 10):
            temp_c += 0.45 * rig.period_ms / 1000
            rig.set_temp(temp_c)
            rig.tick()
            if rig.state == "FAULT":
                break
        if rig.state == "FAULT" or _hold(rig, 300, False):
            break
        rig.hw.press_footswitch(True)
    assert _fault(rig) == "THERMAL_RUNAWAY", (_fault(rig), temp_c)
    assert temp_c < rig.board["thermal"]["derate_start_c"], temp_c


def _gated_light_mj(rig, runs_ms):
    """The light a hardware gate emits over runs of `runs_ms` each, starting high every time."""
    t = rig.treatment
    period_ns = 1000000000 // t.pulse_hz
    high_ns = period_ns * t.gate_duty_u16 // 65536
    total_ns = 0
    for run_ms in runs_ms:
        run_ns = run_ms * 1000000
        total_ns += run_ns // period_ns * high_ns + min(run_ns % period_ns, high_ns)
    return t.peak_uw_steps[-1] * total_ns // 1000000000000


def test_hardware_gated_pulses_are_counted_as_the_gate_emits_them():
    # 150 Hz: a period of 6.67 ms, which a 10 ms tick does not divide. The gate starts high at
    # every resume, so a chattering pedal emits more than the average: the count must follow.
    rig = Rig(spec=PULSED_150HZ)
    rig.start_emitting()
    rig.hw.press_footswitch(False)
    rig.tick()
    before_mj = rig.app.dosimeter.energy_mj
    runs, run = [], 0
    for _ in range(40):  # pressed for 3 ticks (debounce: 2), released for 2
        for pressed in (True, True, True, False, False):
            rig.hw.press_footswitch(pressed)
            rig.tick()
            if rig.hw.enable and rig.hw.gate_hz:
                run += rig.period_ms
            elif run:
                runs.append(run)
                run = 0
    assert len(runs) == 40 and rig.state == "PAUSED", (runs, rig.state)
    truth_mj = _gated_light_mj(rig, runs)
    counted_mj = rig.app.dosimeter.energy_mj - before_mj
    assert truth_mj <= counted_mj <= truth_mj + 40, (truth_mj, counted_mj)
    assert rig.app.supervisor.dose.energy_mj >= truth_mj


def test_an_enable_stuck_high_during_gated_pulses_latches_within_two_ticks():
    rig = Rig(spec=PULSED_5KHZ)
    rig.start_emitting()
    rig.run_ms(500)
    rig.hw.enable_stuck = True  # the diode now runs at its peak: 4x the counted average
    rig.tick()
    rig.tick()
    assert rig.state == "FAULT" and _fault(rig) == "ENABLE_STUCK", (rig.state, _fault(rig))
    assert not rig.hw.enable and rig.hw.duty_u16 == 0


def test_a_fault_and_a_key_off_in_the_same_tick_end_the_session_as_fault():
    rig = Rig()
    rig.start_emitting()
    rig.hw.light_factor = 2.0  # 20 W for 10: beyond the light limit, read at the next tick
    rig.tick()
    rig.set(key_on=False)  # the same tick
    assert rig.state == "FAULT" and _fault(rig) == "LIGHT_OVER_LIMIT"
    assert rig.events("session")[-1]["end"] == "FAULT"


def test_the_light_of_a_slow_tick_is_counted_up_to_the_moment_the_gate_closes():
    rig = Rig()
    rig.start_emitting()
    started_ms = [e["t_ms"] for e in rig.events("state") if e["state"] == "EMITTING"][-1]
    rig.run_ms(1000)
    rig.hw.actuate_delay_ms = 15  # this tick's outputs take effect 15 ms after its start
    released_ms = rig.now_ms
    rig.hw.press_footswitch(False)
    rig.tick()
    assert rig.state == "PAUSED"
    rig.run_ms(100)
    light_ms = released_ms + 15 - started_ms
    assert rig.app.dosimeter.emitting_ms == light_ms, (rig.app.dosimeter.emitting_ms, light_ms)
    light_mj = rig.treatment.power_uw * light_ms // 1000000
    assert rig.app.dosimeter.energy_mj == light_mj, (rig.app.dosimeter.energy_mj, light_mj)
    assert rig.app.supervisor.dose.energy_mj == light_mj


def test_footswitch_disagreement_adds_up_across_presses():
    # The NC contact's wire breaks: up, both contacts read open. Pressed again within the
    # mismatch window each time, the disagreement used to start over at every press.
    rig = Rig(dose_j_cm2=8.0, area_cm2=100.0)
    rig.start_emitting()
    levels = rig.hw.levels
    for _ in range(10):
        levels["footswitch_no_closed"], levels["footswitch_nc_closed"] = True, False
        rig.run_ms(500)
        if rig.state == "FAULT":
            break
        levels["footswitch_no_closed"] = False  # up: NO opens, the broken NC stays open
        rig.run_ms(30)
        if rig.state == "FAULT":
            break
    assert rig.state == "FAULT" and _fault(rig) == "FOOTSWITCH_FAULT", (rig.state, _fault(rig))
    rig.press("reset_pressed")
    assert rig.state == "FAULT", "the pedal was never seen up on both contacts"


def test_short_sessions_add_up_to_a_power_monitor_window():
    # A diode giving 70 % of its calibration, in sessions shorter than the monitor's window:
    # arming used to restart the window, so no window ever completed.
    rig = Rig(dose_j_cm2=8.0, area_cm2=100.0)
    rig.hw.light_factor = 0.7
    for _ in range(4):
        rig.start_emitting()
        rig.run_ms(120)
        rig.hw.press_footswitch(False)
        rig.tick()
        if rig.state == "FAULT":
            break
        rig.press("arm_pressed")  # disarm: the session ends
        assert rig.state == "STANDBY", rig.state
    assert rig.state == "FAULT" and _fault(rig) == "OUTPUT_POWER_DEVIATION", rig.state
