# One test per row of the transition table in docs/states.md (T01...) and of its indicator
# rules (A01...): each drives the real App on a fake hardware object (support.Rig) into the row's
# from-state, applies the trigger, and checks the to-state, the outputs and what was reported.
# tests/test_transition_table.py keeps the table and these tests in step. Runs on CPython and on
# MicroPython: plain asserts, no pytest.
from support import Rig

SESSION_STATES = ("READY", "EMITTING", "PAUSED")
OPERATING_STATES = ("STANDBY", "READY", "EMITTING", "PAUSED", "COMPLETE")


def _timing(rig, name):
    return rig.board["timing"][name]


def _ends(rig):
    return [e["end"] for e in rig.events("session")]


def _fault(rig):
    events = rig.events("fault")
    return events[-1]["code"] if events else None


def _entered(rig, state):
    """The virtual time of the last entry into `state`."""
    times = [e["t_ms"] for e in rig.events("state") if e["state"] == state]
    return times[-1]


def _dark(rig):
    """Emission off: gate closed and no duty on the driver."""
    return not rig.hw.enable and rig.hw.duty_u16 == 0


def _half_tick_mj(rig):
    return rig.treatment.power_uw * rig.period_ms // 2000000


def _leave(rig, state, limit_ms=10000):
    """Tick while in `state` (at most `limit_ms`); return the number of ticks."""
    for n in range(limit_ms // rig.period_ms):
        if rig.state != state:
            return n
        rig.tick()
    raise AssertionError("still %s after %d ms" % (state, limit_ms))


def _ready(**kwargs):
    rig = Rig(**kwargs)
    rig.arm()
    assert rig.state == "READY", rig.state
    return rig


def _emitting(**kwargs):
    rig = Rig(**kwargs)
    rig.start_emitting()
    return rig


def _paused(**kwargs):
    rig = _emitting(**kwargs)
    rig.run_ms(500)
    rig.hw.press_footswitch(False)
    rig.tick()
    assert rig.state == "PAUSED", rig.state
    return rig


def _complete():
    rig = _emitting(dose_j_cm2=1.0, area_cm2=10.0)  # 10 J at 10 W: one second
    _leave(rig, "EMITTING")
    assert rig.state == "COMPLETE", rig.state
    rig.hw.press_footswitch(False)
    rig.tick()
    return rig


def _in_state(state):
    if state == "STANDBY":
        rig = Rig()
        rig.set(key_on=True)
        return rig
    return {"READY": _ready, "EMITTING": _emitting, "PAUSED": _paused,
            "COMPLETE": _complete}[state]()


def _stays(rig, state, ms):
    """`state` on every tick for `ms`, never a photon unless it is EMITTING."""
    for _ in range(ms // rig.period_ms):
        rig.tick()
        assert rig.state == state, (state, rig.state)
        if state != "EMITTING":
            assert _dark(rig), state


def _hold_footswitch_ms(rig, ms):
    rig.hw.press_footswitch()
    rig.run_ms(ms)


# -- STANDBY -----------------------------------------------------------------------------------


def test_T01_arm_with_key_interlock_and_a_treatment_enters_ready():
    rig = Rig()
    rig.set(key_on=True)
    assert rig.state == "STANDBY" and not rig.hw.led and not rig.hw.buzzer
    rig.set(arm_pressed=True)  # acts on the press edge, in the same tick
    assert rig.state == "READY" and rig.events("state")[-1]["state"] == "READY"
    assert _dark(rig) and rig.hw.led and rig.hw.buzzer  # LED and warning tone at once
    rig.set(arm_pressed=False)
    assert rig.state == "READY" and _ends(rig) == []
    # A new session starts from zero: the dose of the previous one stays on its record only.
    rig.run_ms(_timing(rig, "emission_delay_ms"))
    rig.press_footswitch()
    rig.run_ms(500)
    rig.hw.press_footswitch(False)
    rig.tick()
    rig.press("arm_pressed")  # PAUSED -> STANDBY, DISARMED
    assert rig.state == "STANDBY" and rig.events("session")[-1]["delivered_j"] > 4.0
    rig.press("arm_pressed")
    assert rig.state == "READY" and rig.app.dosimeter.energy_mj == 0


def test_T02_arm_without_a_treatment_is_refused():
    rig = Rig(spec=False)
    rig.set(key_on=True)
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
    assert rig.events("refused")[-1]["reason"] == "no treatment selected"


def test_T03_arm_with_the_key_off_is_refused():
    rig = Rig()
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
    assert rig.events("refused")[-1]["reason"] == "key switch off"


def test_T04_arm_with_the_interlock_open_is_refused():
    rig = Rig()
    rig.set(key_on=True, interlock_closed=False)
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
    assert rig.events("refused")[-1]["reason"] == "interlock open"
    assert len(rig.events("refused")) == 1


def test_T05_standby_ignores_the_footswitch_and_the_other_controls():
    rig = Rig()
    rig.set(key_on=True)
    rig.press_footswitch()
    _stays(rig, "STANDBY", 3000)
    for button in ("reset_pressed", "ack_pressed"):
        rig.press(button)
        assert rig.state == "STANDBY" and _dark(rig)
    rig.set(interlock_closed=False)
    rig.set(key_on=False)
    rig.set(interlock_closed=True)
    rig.set(key_on=True)
    _stays(rig, "STANDBY", 500)
    assert not rig.hw.led and rig.events("refused") == [] and _ends(rig) == []


# -- READY -------------------------------------------------------------------------------------


def test_T06_ready_emits_when_the_delay_is_over_after_a_release_and_a_debounced_press():
    # A press held through the end of the delay starts emission exactly when it is over.
    rig = _ready()
    delay = _timing(rig, "emission_delay_ms")
    t_ready = _entered(rig, "READY")
    rig.run_ms(1000)  # up all along: seen released
    rig.hw.press_footswitch()
    _leave(rig, "READY")
    assert rig.state == "EMITTING" and _entered(rig, "EMITTING") - t_ready == delay
    assert rig.hw.enable and rig.hw.duty_u16 == rig.treatment.duty_u16 and rig.hw.led
    assert rig.app.controller.power_uw == rig.treatment.power_uw
    assert rig.hw.buzzer  # the emission tone's first beep
    assert _ends(rig) == []
    # A press after the delay: emission once it has lasted the debounce time.
    rig = _ready()
    rig.run_ms(delay + 1000)
    rig.hw.press_footswitch()
    ticks = _leave(rig, "READY")
    assert ticks * rig.period_ms == _timing(rig, "footswitch_debounce_ms") + rig.period_ms
    assert rig.state == "EMITTING" and rig.hw.enable


def test_T07_ready_does_not_emit_before_the_delay_is_over():
    rig = _ready()
    t_ready = _entered(rig, "READY")
    delay = _timing(rig, "emission_delay_ms")
    rig.tick()  # seen released
    rig.hw.press_footswitch()
    warned = False
    while rig.now_ms - t_ready < delay:  # every tick before the delay is over
        rig.tick()
        warned = warned or rig.hw.buzzer
        assert rig.state == "READY" and _dark(rig) and rig.hw.led
    assert warned
    rig.tick()
    assert rig.state == "EMITTING" and rig.hw.enable


def test_T08_ready_does_not_emit_until_the_footswitch_was_seen_released():
    # Held when arming (or since boot): no emission however long it is held.
    for when in ("boot", "arming"):
        rig = Rig()
        rig.hw.press_footswitch()
        rig.run_ms(100 if when == "boot" else 0)
        rig.set(key_on=True)
        rig.press("arm_pressed")
        assert rig.state == "READY"
        _stays(rig, "READY", 5000)
        # One contact bouncing is not a release: NO opens for a tick while NC stays open.
        rig.set(footswitch_no_closed=False)
        rig.set(footswitch_no_closed=True)
        _stays(rig, "READY", 1000)
        rig.hw.press_footswitch(False)  # a real release, on both contacts
        rig.tick()
        rig.press_footswitch()
        assert rig.state == "EMITTING" and rig.hw.enable, when


def test_T09_ready_does_not_emit_on_a_press_shorter_than_the_debounce():
    rig = _ready()
    rig.run_ms(_timing(rig, "emission_delay_ms"))
    for _ in range(20):  # a bouncing contact: 10 ms closed, 10 ms open
        rig.hw.press_footswitch()
        rig.tick()
        assert rig.state == "READY" and _dark(rig)
        rig.hw.press_footswitch(False)
        rig.tick()
        assert rig.state == "READY" and _dark(rig)
    rig.hw.press_footswitch()
    rig.tick()
    rig.tick()
    assert rig.state == "READY" and _dark(rig)  # held 10 ms of the 20
    rig.tick()
    assert rig.state == "EMITTING" and rig.hw.enable


def test_T10_ready_does_not_emit_when_the_dose_is_already_reached():
    # Defensive: arming clears the count and a treatment lasts at least 1 s, so this needs a
    # target within half a tick's energy - which must never let a single tick of light out.
    rig = Rig()
    rig.treatment.target_mj = _half_tick_mj(rig)
    rig.arm()
    rig.run_ms(_timing(rig, "emission_delay_ms"))
    rig.hw.press_footswitch()
    _stays(rig, "READY", 1000)
    assert rig.app.dosimeter.energy_mj == 0


def test_T11_arm_in_ready_disarms():
    rig = _ready()
    rig.run_ms(500)
    rig.set(arm_pressed=True)
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led and not rig.hw.buzzer
    session = rig.events("session")[-1]
    assert session["end"] == "DISARMED" and session["delivered_j"] == 0
    rig.set(arm_pressed=False)
    assert rig.state == "STANDBY"  # the button's release does not arm again


def test_T12_ready_times_out_to_standby():
    rig = _ready()
    t_ready = _entered(rig, "READY")
    timeout = _timing(rig, "ready_timeout_ms")
    while rig.now_ms - t_ready < timeout:
        rig.tick()
    assert rig.state == "READY"
    rig.tick()
    assert rig.state == "STANDBY" and _entered(rig, "STANDBY") - t_ready == timeout
    assert _ends(rig) == ["READY_TIMEOUT"] and not rig.hw.led and _dark(rig)


def test_T13_key_off_in_ready_ends_the_session():
    rig = _ready()
    rig.set(key_on=False)
    assert rig.state == "STANDBY" and _ends(rig) == ["KEY_OFF"] and not rig.hw.led
    rig.set(key_on=True)
    _stays(rig, "STANDBY", 3000)  # the key alone never arms


def test_T14_interlock_open_in_ready_ends_the_session():
    rig = _ready()
    rig.set(interlock_closed=False)
    assert rig.state == "STANDBY" and _ends(rig) == ["INTERLOCK_OPEN"] and not rig.hw.led
    rig.set(interlock_closed=True)
    _stays(rig, "STANDBY", 3000)


# -- EMITTING ----------------------------------------------------------------------------------


def test_T15_release_pauses_emission_at_once():
    # Both contacts up, or either contact alone leaving the pressed position: off in that tick.
    for levels in ({"footswitch_no_closed": False, "footswitch_nc_closed": True},
                   {"footswitch_no_closed": False}, {"footswitch_nc_closed": True}):
        rig = _emitting()
        rig.run_ms(1000)
        rig.set(**levels)
        assert rig.state == "PAUSED" and _dark(rig), levels
        assert rig.hw.led and rig.app.controller.power_uw == 0
        assert _ends(rig) == []
    rig = _emitting()
    rig.run_ms(1000)
    rig.hw.press_footswitch(False)
    rig.tick()
    kept = rig.app.dosimeter.energy_mj
    assert kept > 9000
    _stays(rig, "PAUSED", 3000)
    assert rig.app.dosimeter.energy_mj == kept and not rig.hw.buzzer


def test_T16_emission_stops_by_itself_at_the_dose():
    rig = _emitting(dose_j_cm2=1.0, area_cm2=10.0)  # 10 J at 10 W
    _leave(rig, "EMITTING")
    assert rig.state == "COMPLETE" and _dark(rig) and not rig.hw.led
    delivered = rig.app.dosimeter.energy_mj
    assert abs(delivered - rig.treatment.target_mj) <= _half_tick_mj(rig), delivered
    session = rig.events("session")[-1]
    assert session["end"] == "COMPLETE" and session["delivered_j"] == delivered / 1000
    assert rig.app.controller.alarm == 1 and rig.hw.buzzer  # LOW: the first pulse
    _stays(rig, "COMPLETE", 3000)  # the footswitch still held: nothing more
    assert rig.app.dosimeter.energy_mj == delivered


def test_T17_key_off_while_emitting_stops_it_and_ends_the_session():
    rig = _emitting()
    rig.run_ms(1000)
    rig.set(key_on=False)
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
    assert _ends(rig) == ["KEY_OFF"] and rig.events("session")[-1]["delivered_j"] > 9.0
    rig.set(key_on=True)
    _stays(rig, "STANDBY", 3000)  # footswitch still held: never back to emission by itself


def test_T18_interlock_open_while_emitting_stops_it_and_ends_the_session():
    rig = _emitting()
    rig.run_ms(1000)
    rig.set(interlock_closed=False)
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
    assert _ends(rig) == ["INTERLOCK_OPEN"]
    rig.set(interlock_closed=True)
    _stays(rig, "STANDBY", 3000)


def test_T19_emitting_ignores_arm_reset_and_ack():
    rig = _emitting()
    for button in ("arm_pressed", "reset_pressed", "ack_pressed"):
        rig.press(button)
        assert rig.state == "EMITTING" and rig.hw.enable, button
    assert _ends(rig) == []


# -- PAUSED ------------------------------------------------------------------------------------


def test_T20_press_resumes_the_same_session():
    rig = _paused()
    kept = rig.app.dosimeter.energy_mj
    rig.run_ms(3000)
    rig.hw.press_footswitch()
    rig.tick()
    rig.tick()
    assert rig.state == "PAUSED" and _dark(rig)  # debounced like any press
    rig.tick()
    assert rig.state == "EMITTING" and rig.hw.enable  # no second emission delay
    assert rig.app.dosimeter.energy_mj == kept
    rig.run_ms(1000)
    assert rig.app.dosimeter.energy_mj > kept + 9000  # the same count goes on
    assert _ends(rig) == [] and [e["state"] for e in rig.events("state")].count("READY") == 1


def test_T21_arm_in_paused_ends_the_session_with_its_partial_dose():
    rig = _paused()
    kept = rig.app.dosimeter.energy_mj
    rig.set(arm_pressed=True)
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
    session = rig.events("session")[-1]
    assert session["end"] == "DISARMED" and session["delivered_j"] == kept / 1000


def test_T22_paused_times_out_to_standby_with_its_partial_dose():
    rig = _paused()
    t_paused = _entered(rig, "PAUSED")
    kept = rig.app.dosimeter.energy_mj
    timeout = _timing(rig, "paused_timeout_ms")
    while rig.now_ms - t_paused < timeout:
        rig.tick()
    assert rig.state == "PAUSED"
    rig.tick()
    assert rig.state == "STANDBY" and _entered(rig, "STANDBY") - t_paused == timeout
    session = rig.events("session")[-1]
    assert session["end"] == "PAUSED_TIMEOUT" and session["delivered_j"] == kept / 1000


def test_T23_key_off_in_paused_ends_the_session():
    rig = _paused()
    rig.set(key_on=False)
    assert rig.state == "STANDBY" and _ends(rig) == ["KEY_OFF"] and not rig.hw.led
    rig.set(key_on=True)
    rig.press_footswitch()
    _stays(rig, "STANDBY", 1000)


def test_T24_interlock_open_in_paused_ends_the_session():
    rig = _paused()
    rig.set(interlock_closed=False)
    assert rig.state == "STANDBY" and _ends(rig) == ["INTERLOCK_OPEN"] and not rig.hw.led
    rig.set(interlock_closed=True)
    rig.press_footswitch()
    _stays(rig, "STANDBY", 1000)


# -- COMPLETE ----------------------------------------------------------------------------------


def _acknowledge(button):
    rig = _complete()
    _stays(rig, "COMPLETE", 5000)  # waits for the operator
    ends = _ends(rig)
    rig.set(**{button: True})
    assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led, button
    assert rig.app.controller.alarm == 0 and not rig.hw.buzzer
    assert _ends(rig) == ends == ["COMPLETE"]  # the session ended when the dose was reached
    rig.set(**{button: False})
    assert rig.state == "STANDBY"
    rig.press("arm_pressed")
    assert rig.state == "READY" and rig.app.dosimeter.energy_mj == 0  # a new session


def test_T25_arm_acknowledges_complete():
    _acknowledge("arm_pressed")


def test_T26_reset_acknowledges_complete():
    _acknowledge("reset_pressed")


def test_T27_ack_acknowledges_complete():
    _acknowledge("ack_pressed")


def test_T28_complete_stays_without_an_acknowledgement():
    rig = _complete()
    rig.press_footswitch()
    rig.set(key_on=False)
    rig.set(interlock_closed=False)
    rig.set(key_on=True, interlock_closed=True)
    rig.hw.press_footswitch(False)
    _stays(rig, "COMPLETE", 1000)
    rig.press_footswitch()
    _stays(rig, "COMPLETE", 1000)
    assert _ends(rig) == ["COMPLETE"]


# -- into FAULT --------------------------------------------------------------------------------


def _faulted_from(state, cause, code):
    """Enter FAULT from `state` by `cause(rig)` (which ticks); check the common effects."""
    rig = _in_state(state)
    ends = len(_ends(rig))
    cause(rig)
    assert rig.state == "FAULT" and _dark(rig) and not rig.hw.led, (state, code, rig.state)
    assert _fault(rig) == code, (state, code, _fault(rig))
    assert rig.app.controller.alarm == 3, state  # HIGH
    if state in SESSION_STATES:
        assert _ends(rig)[ends:] == ["FAULT"], (state, _ends(rig))
    else:
        assert len(_ends(rig)) == ends, state
    return rig


def test_T29_estop_faults_at_once_in_every_state():
    def press_estop(rig):
        rig.set(estop_pressed=True)

    for state in OPERATING_STATES:
        rig = _faulted_from(state, press_estop, "ESTOP")
        assert rig.hw.buzzer  # the first pulse of the high alarm, in the same tick


def test_T30_footswitch_contacts_disagreeing_past_the_window_fault():
    def disagree(rig):
        # Pressed: NC closes too (a stuck contact); up: NC opens too (a broken wire).
        rig.set(footswitch_nc_closed=not rig.hw.levels["footswitch_nc_closed"])
        t0 = rig.now_ms - rig.period_ms
        window = _timing(rig, "footswitch_mismatch_ms")
        assert _dark(rig)
        while rig.now_ms - t0 <= window:  # ticks up to t0 + window - 10 ms: not yet
            assert rig.state != "FAULT"
            rig.tick()
        assert rig.state == "FAULT"  # the tick at t0 + window

    for state in OPERATING_STATES:
        _faulted_from(state, disagree, "FOOTSWITCH_FAULT")


def test_T31_over_temperature_faults_in_any_state():
    def overheat(rig):
        rig.ramp_temp(44.0, 46.0, 0.2, until=lambda: rig.state == "FAULT")
        assert abs(rig.app.controller.temp_c - 45.0) < 0.05

    for state in ("STANDBY", "EMITTING"):
        rig = Rig(temp_c=44.0)  # a hot room; while emitting, derated to a third
        if state == "EMITTING":
            rig.start_emitting()
        overheat(rig)
        assert rig.state == "FAULT" and _dark(rig) and _fault(rig) == "OVER_TEMP", state
        assert _ends(rig) == (["FAULT"] if state == "EMITTING" else []), state


def test_T32_a_too_fast_rise_faults():
    def rise(rig):
        rig.ramp_temp(25.0, 40.0, 1.0, until=lambda: rig.state == "FAULT")  # 2x the limit
        assert rig.app.controller.temp_c < 32.0

    _faulted_from("STANDBY", rise, "THERMAL_RATE")


def test_T33_heating_beyond_what_the_cooling_allows_faults():
    def dead_fan(rig):
        # Within the rate limit, but more than the diode's heat and the cooling can explain.
        rig.ramp_temp(25.0, 40.0, 0.45, until=lambda: rig.state == "FAULT")

    _faulted_from("EMITTING", dead_fan, "THERMAL_RUNAWAY")


def _sensor_reads(uv):
    def fault(rig):
        rig.hw.thermistor_uv = uv
        rig.tick()

    return fault


def test_T34_an_open_thermistor_faults():
    for state in ("STANDBY", "EMITTING"):
        _faulted_from(state, _sensor_reads(3100000), "THERMISTOR_OPEN")


def test_T35_a_shorted_thermistor_faults():
    for state in ("STANDBY", "EMITTING"):
        _faulted_from(state, _sensor_reads(0), "THERMISTOR_SHORT")


def test_T36_a_thermistor_reading_out_of_range_faults():
    for state in ("STANDBY", "EMITTING"):
        _faulted_from(state, _sensor_reads(2700000), "THERMISTOR_RANGE")


def test_T37_a_jump_no_heatsink_can_make_faults():
    def jump(rig):
        rig.set_temp(28.0)  # 3 C in one tick
        rig.tick()

    for state in ("STANDBY", "EMITTING"):
        _faulted_from(state, jump, "THERMISTOR_JUMP")


def test_T38_a_stuck_reading_while_emitting_faults():
    def stuck(rig):
        rig.hw.spread_uv = 0  # the ADC repeats one value
        limit = rig.board["thermal"]["stuck_s"] * 1000 + 2 * rig.period_ms
        for _ in range(limit // rig.period_ms):
            rig.tick()
            if rig.state == "FAULT":
                break

    _faulted_from("EMITTING", stuck, "THERMISTOR_STUCK")


def test_T39_light_off_its_calibration_faults():
    def aged(rig):
        rig.hw.light_factor = 0.7
        for _ in range(60):  # within a 250 ms window (and the one in progress)
            rig.tick()
            if rig.state == "FAULT":
                break

    _faulted_from("EMITTING", aged, "OUTPUT_POWER_DEVIATION")


def test_T40_an_exception_in_a_tick_faults():
    def fail(rig):
        rig.hw.fail_next_sense = True
        rig.tick()
        assert rig.state == "FAULT" and _dark(rig) and rig.hw.safe_off_calls == 1
        assert "simulated sensor bus failure" in rig.events("error")[-1]["error"]
        rig.tick()  # the alarm sounds from the next tick, the first that runs to its end

    for state in OPERATING_STATES:
        _faulted_from(state, fail, "SOFTWARE")


# -- out of FAULT ------------------------------------------------------------------------------
# Each cause, the way to remove it, and whether it is still there.


def _estop(rig):
    rig.set(estop_pressed=True)


def _estop_gone(rig):
    rig.set(estop_pressed=False)


def _broken_wire(rig):
    rig.set(footswitch_nc_closed=False)  # up, NC open too
    rig.run_ms(100)


def _wire_mended(rig):
    rig.set(footswitch_nc_closed=True)


def _hot(rig):
    rig.ramp_temp(44.0, 46.0, 0.3, until=lambda: rig.state == "FAULT")


def _cooled(rig):
    rig.ramp_temp(rig.app.controller.temp_c, 35.0, 0.4)


def _short(rig):
    rig.hw.thermistor_uv = 0
    rig.tick()


def _good_reading(rig):
    rig.set_temp(30.0)
    rig.run_ms(100)


def _software(rig):
    rig.hw.fail_next_sense = True
    rig.tick()


def _nothing(rig):
    rig.run_ms(100)


CAUSES = (("ESTOP", _estop, _estop_gone), ("FOOTSWITCH_FAULT", _broken_wire, _wire_mended),
          ("OVER_TEMP", _hot, _cooled), ("THERMISTOR_SHORT", _short, _good_reading),
          ("SOFTWARE", _software, _nothing))


def _fault_rig(code, cause):
    rig = Rig(temp_c=44.0) if code == "OVER_TEMP" else Rig()
    rig.set(key_on=True)
    cause(rig)
    assert rig.state == "FAULT" and _fault(rig) == code, (code, _fault(rig))
    return rig


def test_T41_reset_once_the_cause_is_gone_leaves_fault():
    for code, cause, remedy in CAUSES:
        rig = _fault_rig(code, cause)
        remedy(rig)
        assert rig.state == "FAULT", code  # latched: the cause going away is not enough
        rig.set(reset_pressed=True)
        assert rig.state == "STANDBY", code
        assert rig.app.controller.fault_code is None and rig.app.controller.alarm == 0
        assert _dark(rig) and not rig.hw.led and not rig.hw.buzzer, code
        rig.set(reset_pressed=False)
        rig.run_ms(1000)  # no stale history (jump, rate) faults again
        assert rig.state == "STANDBY", (code, _fault(rig))
        rig.press("arm_pressed")
        assert rig.state == "READY", code
    # The power monitor's cause is the light of a finished window: reset clears it.
    rig = _emitting()
    rig.hw.light_factor = 0.7
    rig.run_ms(600)
    assert _fault(rig) == "OUTPUT_POWER_DEVIATION"
    rig.hw.press_footswitch(False)
    rig.press("reset_pressed")
    assert rig.state == "STANDBY"


def test_T42_reset_while_the_cause_persists_stays_in_fault():
    for code, cause, remedy in CAUSES:
        if remedy is _nothing:
            continue  # SOFTWARE: nothing persists once the tick is over
        rig = _fault_rig(code, cause)
        if code == "OVER_TEMP":
            rig.ramp_temp(45.0, 43.0, 0.3)  # below the limit, not below it minus hysteresis
        rig.press("reset_pressed")
        rig.run_ms(100)
        assert rig.state == "FAULT" and _dark(rig) and _fault(rig) == code, code
        assert rig.app.controller.alarm == 3
        remedy(rig)
        rig.run_ms(100)
        assert rig.state == "FAULT", code  # the earlier reset does not count afterwards
        rig.press("reset_pressed")
        assert rig.state == "STANDBY", code
    # A key cycle is not a reset.
    rig = _fault_rig("ESTOP", _estop)
    rig.set(estop_pressed=False)
    rig.set(key_on=False)
    rig.set(key_on=True)
    rig.run_ms(100)
    assert rig.state == "FAULT"


def test_T43_ack_silences_the_alarm_for_a_while_without_clearing_the_fault():
    rig = _fault_rig("ESTOP", _estop)
    silence = _timing(rig, "alarm_silence_ms")
    rig.run_ms(300)
    rig.set(ack_pressed=True)
    t_ack = rig.now_ms - rig.period_ms
    c = rig.app.controller
    assert c.silenced and c.alarm == 3 and not rig.hw.buzzer and rig.state == "FAULT"
    rig.set(ack_pressed=False)
    while rig.now_ms - t_ack < silence:
        rig.tick()
        assert rig.state == "FAULT" and c.silenced and not rig.hw.buzzer
    rig.tick()
    assert not c.silenced and rig.state == "FAULT"
    sounded = False
    for _ in range(5000 // rig.period_ms):  # the next burst of the high alarm
        rig.tick()
        sounded = sounded or rig.hw.buzzer
    assert sounded and rig.events("status")[-1]["silenced"] is False
    # Silenced or not, the latch stays until the cause is gone and reset is pressed.
    rig.press("ack_pressed")
    rig.press("reset_pressed")
    assert rig.state == "FAULT" and c.silenced
    rig.set(estop_pressed=False)
    rig.press("reset_pressed")
    assert rig.state == "STANDBY" and not c.silenced and not rig.hw.buzzer


# -- indicators and alarms ---------------------------------------------------------------------


def _buzzer_pattern(rig, ms):
    pattern = []
    for _ in range(ms // rig.period_ms):
        pattern.append(rig.hw.buzzer)
        rig.tick()
    return pattern


def _expected(ms, period, on, step=10):
    return [t % period < on for t in range(0, ms, step)]


def _expected_burst(ms, pulses, on, off, repeat, step=10):
    return [t % repeat < pulses * (on + off) and t % repeat % (on + off) < on
            for t in range(0, ms, step)]


def test_A01_emission_led_is_lit_exactly_while_the_laser_can_emit():
    rig = Rig(dose_j_cm2=1.0, area_cm2=10.0)
    seen = {}

    def note():
        seen[rig.state] = seen.get(rig.state, set())
        seen[rig.state].add(rig.hw.led)

    note()
    rig.arm()
    note()
    rig.run_ms(2000)
    rig.press_footswitch()
    note()
    rig.hw.press_footswitch(False)
    rig.tick()
    note()
    rig.press_footswitch()
    for _ in range(200):  # 10 J at 10 W: about a second
        rig.tick()
        note()
    assert rig.state == "COMPLETE"
    rig.press("ack_pressed")
    note()
    rig.set(estop_pressed=True)
    note()
    assert seen == {"STANDBY": {False}, "READY": {True}, "EMITTING": {True},
                    "PAUSED": {True}, "COMPLETE": {False}, "FAULT": {False}}, seen


def test_A02_warning_tone_during_the_delay_and_emission_tone_while_emitting():
    rig = Rig()
    rig.set(key_on=True)
    rig.set(arm_pressed=True)
    delay = _timing(rig, "emission_delay_ms")
    # READY: 200 ms on, 200 ms off, from entry to the end of the delay; then silence.
    assert _buzzer_pattern(rig, delay) == _expected(delay, 400, 200)
    assert _buzzer_pattern(rig, 1000) == [False] * 100
    rig.hw.press_footswitch()
    _leave(rig, "READY")
    # EMITTING: 100 ms every second, from entry.
    assert _buzzer_pattern(rig, 3000) == _expected(3000, 1000, 100)
    rig.hw.press_footswitch(False)
    rig.tick()
    assert _buzzer_pattern(rig, 2000) == [False] * 200  # PAUSED: quiet


def test_A03_high_alarm_in_fault_ten_pulses_every_five_seconds():
    rig = Rig()
    rig.set(estop_pressed=True)
    assert rig.state == "FAULT"
    assert _buzzer_pattern(rig, 10000) == _expected_burst(10000, 10, 120, 80, 5000)
    assert rig.events("status")[-1]["alarm"] == "HIGH"


def test_A04_medium_alarm_while_the_heatsink_is_warm_three_pulses_every_eight_seconds():
    rig = Rig(temp_c=41.0)  # above the 40 C warning from the first reading, at boot
    t_warm = rig.now_ms - rig.period_ms
    assert rig.app.controller.alarm == 2
    assert _buzzer_pattern(rig, 16000) == _expected_burst(16000, 3, 200, 200, 8000)
    assert rig.events("status")[-1]["alarm"] == "MEDIUM"
    # While emitting, the bursts sound over the emission tone, which plays between them. (A
    # device booted warm: a heatsink that stayed warm for long without heat or cooling would be
    # a runaway.)
    rig = Rig(temp_c=41.0)
    t_warm = rig.now_ms - rig.period_ms
    rig.start_emitting()
    t_emit = _entered(rig, "EMITTING")
    burst = _expected_burst(8000, 3, 200, 200, 8000, step=1)
    for _ in range(16000 // rig.period_ms):
        now = rig.now_ms - rig.period_ms
        since = (now - t_warm) % 8000
        if since < 1200:
            assert rig.hw.buzzer == burst[since], now
        else:
            assert rig.hw.buzzer == ((now - t_emit) % 1000 < 100), now
        rig.tick()
    assert rig.state == "EMITTING" and rig.app.controller.alarm == 2
    # Cooled below the warning level (less its 0.2 C hysteresis): the alarm ends.
    rig = Rig(temp_c=41.0)
    rig.ramp_temp(41.0, 39.0, 0.3)
    rig.run_ms(1000)
    assert rig.app.controller.alarm == 0 and not rig.hw.buzzer
    assert rig.events("status")[-1]["alarm"] == "NONE"


def test_A05_low_alarm_when_complete_one_pulse_every_fifteen_seconds():
    rig = _emitting(dose_j_cm2=1.0, area_cm2=10.0)
    _leave(rig, "EMITTING")
    assert rig.app.controller.alarm == 1
    assert _buzzer_pattern(rig, 30000) == _expected_burst(30000, 1, 300, 0, 15000)
    assert rig.events("status")[-1]["alarm"] == "LOW"


def test_T44_a_resume_with_the_dose_already_reached_completes_without_emitting():
    rig = _paused()
    # As after a pause while derated and a resume at full power: 1 mJ left, under half a tick.
    rig.app.dosimeter.energy_mj = rig.treatment.target_mj - 1
    rig.hw.press_footswitch()
    emitted = False
    for _ in range(10):
        rig.tick()
        emitted = emitted or rig.hw.enable
    assert rig.state == "COMPLETE" and not emitted
    assert rig.events("session")[-1]["end"] == "COMPLETE"


# -- boot, and the loop's own faults -----------------------------------------------------------


def test_T45_a_passed_self_test_leaves_boot_for_standby():
    rig = Rig()
    assert rig.self_test is None and rig.state == "STANDBY" and _dark(rig)
    assert rig.events("selftest")[-1]["ok"] is True
    assert rig.events("state")[0]["state"] == "STANDBY"
    rig.arm()
    assert rig.state == "READY"


def test_T46_a_failed_self_test_locks_arming_with_its_reason():
    from support import FakeHardware, load_board

    board = load_board()
    broken_gate = FakeHardware(board=board)
    broken_gate.shutdown_path_problem = "enable line reads 0 when driven 1"
    cases = ((Rig(integrity_problem="firmware file altered: lib/dose.py"),
              "firmware file altered: lib/dose.py"),
             (Rig(hw=broken_gate), "self-test: shutdown path: enable line reads 0 when driven 1"),
             (Rig(temp_c=4.0), "self-test: thermistor reads 4.0 C: implausibly cold"))
    for rig, reason in cases:
        assert rig.self_test == reason and rig.state == "STANDBY"
        assert rig.events("selftest")[-1] == {"ev": "selftest", "t_ms": 0, "ok": False,
                                              "problem": reason}
        rig.arm()
        assert rig.state == "STANDBY" and _dark(rig) and not rig.hw.led
        assert rig.events("refused")[-1]["reason"] == reason
        # The supervisor is locked as well: it would veto even a state machine that armed.
        assert rig.app.supervisor.locked == reason and not rig.app.supervisor.permitted


def test_T47_after_a_watchdog_reset_the_device_boots_into_fault():
    rig = Rig(watchdog_reset=True)
    assert rig.state == "FAULT" and _fault(rig) == "WATCHDOG_RESET" and _dark(rig)
    assert rig.app.controller.alarm == 3
    rig.press("reset_pressed")  # nothing persists: the operator may go on
    assert rig.state == "STANDBY"


def test_T48_memory_exhaustion_in_a_tick_faults_even_if_the_report_needs_memory():
    def exhaust(rig):
        rig.hw.sense_error = MemoryError()
        write = rig.app.recorder._once  # the error line's way into the serial port's queue
        failures = [1]

        def full_heap_write(line):  # the error path's first report fails for want of memory
            if failures:
                failures.pop()
                raise MemoryError()
            write(line)

        rig.app.recorder._once = full_heap_write
        rig.tick()
        assert rig.state == "FAULT" and _dark(rig) and rig.hw.safe_off_calls == 1
        rig.tick()  # the next tick reports what the full heap held back
        assert rig.events("fault")[-1]["code"] == "OUT_OF_MEMORY"

    for state in OPERATING_STATES:
        _faulted_from(state, exhaust, "OUT_OF_MEMORY")


def test_T49_repeated_overruns_fault():
    def overrun(rig):
        limit = _timing(rig, "overruns_per_s")
        for _ in range(limit - 1):  # one short of the limit, spread over more than a second
            rig.app.overran(rig.now_ms)
            rig.run_ms(300)
        assert rig.state != "FAULT"
        for _ in range(limit):  # the limit within one second
            rig.app.overran(rig.now_ms)
            rig.tick()
        assert rig.app.overruns == 2 * limit - 1

    for state in OPERATING_STATES:
        if state in ("READY", "PAUSED"):
            continue  # 1.2 s of waiting would reach the emission delay, not the point here
        _faulted_from(state, overrun, "LOOP_OVERRUN")


def test_T50_the_supervisor_budget_stops_a_dose_the_state_machine_never_ends():
    def never_done(rig):
        rig.app.controller._dose_reached = lambda dosimeter: False  # the injected bug
        for _ in range(20000):
            rig.tick()
            if rig.state == "FAULT":
                break

    rig = _faulted_from("EMITTING", never_done, "DOSE_BUDGET")
    t = rig.treatment
    budget_mj = t.target_mj * 101 // 100 + 2 * rig.period_ms * 15  # 15 W: the sim's max power
    tick_mj = t.power_uw * rig.period_ms // 1000000
    assert budget_mj <= rig.app.dosimeter.energy_mj <= budget_mj + tick_mj
    assert rig.app.supervisor.dose.energy_mj == rig.app.dosimeter.energy_mj


def test_T51_light_beyond_the_diodes_maximum_faults_on_the_next_reading():
    def overdriven(rig):
        rig.hw.light_factor = 2.0  # 20 W for 10: beyond 15 W + 10 % + the floor
        rig.tick()  # the light of this tick is read at the next
        rig.tick()

    _faulted_from("EMITTING", overdriven, "LIGHT_OVER_LIMIT")


def test_T52_light_while_the_outputs_are_off_faults():
    def stray(rig):
        rig.hw.stray_light_w = 1.0
        rig.tick()

    for state in ("STANDBY", "READY", "COMPLETE"):
        _faulted_from(state, stray, "UNCOMMANDED_EMISSION")


def test_T53_the_enable_line_reading_back_high_while_driven_low_faults():
    def stuck(rig):
        rig.hw.enable_stuck = True
        rig.tick()

    for state in ("STANDBY", "READY", "PAUSED", "COMPLETE"):
        _faulted_from(state, stuck, "ENABLE_STUCK")


# -- the serial port's commands (commands.py, docs/serial.md) ------------------------------------


def test_T54_a_serial_arm_enters_ready_and_never_emits_by_itself():
    rig = _in_state("STANDBY").attach_memory()
    assert rig.send({"cmd": "arm"})["state"] == "READY"
    assert rig.hw.led and _dark(rig)
    _stays(rig, "READY", _timing(rig, "emission_delay_ms") + 1000)  # no footswitch: no light
    for state in ("READY", "EMITTING", "PAUSED", "COMPLETE"):
        rig = _in_state(state).attach_memory()
        reply = rig.send({"cmd": "arm"})
        assert reply["ok"] is False and "only from STANDBY" in reply["error"], state
        assert rig.state == state


def test_T55_a_serial_disarm_ends_the_session_in_any_session_state():
    for state in SESSION_STATES:
        rig = _in_state(state).attach_memory()
        ends = len(_ends(rig))
        reply = rig.send({"cmd": "disarm"})
        assert reply == {"ok": True, "cmd": "disarm", "state": "STANDBY"}, state
        assert _dark(rig) and not rig.hw.led, state
        assert _ends(rig)[ends:] == ["DISARMED"], state


def test_T56_arming_is_refused_while_the_journal_cannot_record_the_session():
    rig = _in_state("STANDBY").attach_memory()
    rig.app.controller.block("journal full: export it and release it (service)")
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and _dark(rig)
    assert rig.events("refused")[-1]["reason"].startswith("journal full")


def test_T57_changed_settings_lock_arming_until_a_restart_applies_them():
    rig = _in_state("STANDBY").attach_memory()
    rig.send({"cmd": "service", "pin": "4321"})
    assert rig.send({"cmd": "limits", "max_power_w": 12.0})["ok"] is True
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and _dark(rig)
    assert "restart the device" in rig.events("refused")[-1]["reason"]
    assert rig.app.supervisor.locked is not None  # and the supervisor holds the light off too
