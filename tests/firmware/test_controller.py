# The treatment state machine through the real App loop on a fake hardware object: every
# transition of the skeleton, the dose stop, and the safety behaviours around them.
from support import Rig


def test_boots_to_standby_with_everything_off():
    rig = Rig()
    rig.tick()
    assert rig.state == "STANDBY"
    assert not rig.hw.enable and rig.hw.duty_u16 == 0 and not rig.hw.led


def test_arm_needs_key_interlock_and_a_treatment():
    rig = Rig()
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and rig.events("refused")[-1]["reason"] == "key switch off"
    rig.set(key_on=True, interlock_closed=False)
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and rig.events("refused")[-1]["reason"] == "interlock open"
    rig = Rig(spec=False)
    rig.arm()
    assert rig.state == "STANDBY"
    assert rig.events("refused")[-1]["reason"] == "no treatment selected"


def test_ready_warns_before_any_emission():
    rig = Rig()
    rig.arm()
    assert rig.state == "READY" and rig.hw.led
    rig.hw.press_footswitch()
    buzzer_seen = False
    for _ in range(190):  # most of the 2 s delay, footswitch held all along
        rig.tick()
        buzzer_seen = buzzer_seen or rig.hw.buzzer
        assert rig.state == "READY" and not rig.hw.enable
    assert buzzer_seen, "the warning tone must sound during the emission delay"
    rig.run_ms(100)
    assert rig.state == "EMITTING" and rig.hw.enable


def test_footswitch_held_when_armed_must_be_released_first():
    rig = Rig()
    rig.set(key_on=True)
    rig.hw.press_footswitch()
    rig.press("arm_pressed")
    rig.run_ms(5000)
    assert rig.state == "READY" and not rig.hw.enable
    rig.hw.press_footswitch(False)
    rig.tick()
    rig.press_footswitch()
    assert rig.state == "EMITTING" and rig.hw.enable


def test_release_pauses_and_press_resumes_the_same_session():
    rig = Rig()
    rig.start_emitting()
    rig.run_ms(1000)
    rig.hw.press_footswitch(False)
    rig.tick()
    assert rig.state == "PAUSED" and not rig.hw.enable and rig.hw.duty_u16 == 0
    kept = rig.app.dosimeter.energy_mj
    rig.run_ms(3000)
    assert rig.app.dosimeter.energy_mj == kept
    rig.press_footswitch()
    assert rig.state == "EMITTING" and rig.app.dosimeter.energy_mj == kept


def test_stops_by_itself_within_half_a_tick_of_the_dose():
    rig = Rig(power_w=10.0, dose_j_cm2=1.0, area_cm2=10.0)  # 10 J at 10 W: about 1 s
    rig.start_emitting()
    while rig.state == "EMITTING":
        rig.tick()
    assert rig.state == "COMPLETE" and not rig.hw.enable
    delivered_mj = rig.app.dosimeter.energy_mj
    half_tick_mj = rig.treatment.power_uw * rig.period_ms // 2 // 1000000
    assert abs(delivered_mj - 10000) <= half_tick_mj, delivered_mj
    rig.run_ms(2000)  # footswitch still held: nothing more
    assert rig.app.dosimeter.energy_mj == delivered_mj and not rig.hw.enable


def test_complete_needs_an_acknowledgement():
    rig = Rig(dose_j_cm2=1.0, area_cm2=10.0)
    rig.start_emitting()
    rig.run_ms(2000)
    assert rig.state == "COMPLETE"
    rig.hw.press_footswitch(False)
    rig.run_ms(1000)
    assert rig.state == "COMPLETE"
    rig.press("arm_pressed")
    assert rig.state == "STANDBY"


def test_key_removal_and_interlock_stop_emission_and_drop_to_standby():
    for name in ("key_on", "interlock_closed"):
        rig = Rig()
        rig.start_emitting()
        rig.set(**{name: False})
        assert rig.state == "STANDBY" and not rig.hw.enable, name
        rig.set(**{name: True})
        rig.run_ms(3000)
        assert rig.state == "STANDBY" and not rig.hw.enable, "must never resume by itself"


def test_over_temperature_in_standby_latches_until_cooled_and_reset():
    rig = Rig()
    rig.set_temp(25.0)
    rig.ramp_temp(25.0, 46.0, 0.3, until=lambda: rig.state == "FAULT")  # a hot room, no laser
    assert rig.state == "FAULT" and rig.events("fault")[-1]["code"] == "OVER_TEMP"
    assert abs(rig.app.controller.temp_c - 45.0) < 0.05
    rig.ramp_temp(45.0, 43.0, 0.3)  # below the limit, inside the hysteresis
    rig.press("reset_pressed")
    assert rig.state == "FAULT"
    rig.ramp_temp(43.0, 35.0, 0.3)
    rig.run_ms(500)
    assert rig.state == "FAULT", "the cause going away does not clear a latched fault"
    rig.press("reset_pressed")
    assert rig.state == "STANDBY"


def test_thermistor_open_and_short_fault_even_in_standby():
    for uv, code in ((3100000, "THERMISTOR_OPEN"), (0, "THERMISTOR_SHORT")):
        rig = Rig()
        rig.tick()
        rig.hw.thermistor_uv = uv
        rig.tick()
        assert rig.state == "FAULT" and rig.events("fault")[-1]["code"] == code


def test_footswitch_contacts_that_disagree_fault_after_the_window():
    rig = Rig()
    rig.start_emitting()
    rig.set(footswitch_nc_closed=True)  # NO and NC both closed: a stuck or shorted contact
    assert not rig.hw.enable  # not a press any more: emission stops at once
    rig.run_ms(60)
    assert rig.state == "FAULT" and rig.events("fault")[-1]["code"] == "FOOTSWITCH_FAULT"


def test_estop_latches_until_released_and_reset():
    rig = Rig()
    rig.start_emitting()
    rig.set(estop_pressed=True)
    assert rig.state == "FAULT" and not rig.hw.enable
    rig.press("reset_pressed")
    assert rig.state == "FAULT"
    rig.set(estop_pressed=False)
    assert rig.state == "FAULT"
    rig.press("reset_pressed")
    assert rig.state == "STANDBY"


def test_an_exception_in_a_tick_ends_in_a_latched_fault_with_outputs_off():
    rig = Rig()
    rig.start_emitting()
    rig.run_ms(1990)
    emitted_ms = rig.app.dosimeter.emitting_ms
    rig.hw.fail_next_sense = True
    rig.tick()
    assert rig.hw.safe_off_calls == 1 and not rig.hw.enable
    assert rig.state == "FAULT" and rig.events("fault")[-1]["code"] == "SOFTWARE"
    assert "simulated sensor bus failure" in rig.events("error")[-1]["error"]
    # The light of the last tick before the failure is counted, and none after it.
    assert rig.app.dosimeter.emitting_ms == emitted_ms + rig.period_ms
    rig.run_ms(100)
    assert rig.state == "FAULT" and not rig.hw.enable
    assert rig.app.dosimeter.emitting_ms == emitted_ms + rig.period_ms


def test_supervisor_vetoes_what_the_state_machine_asks():
    rig = Rig()
    rig.start_emitting()
    # Corrupt the state machine's view: it believes the footswitch is held, the supervisor reads
    # the raw contacts.
    rig.app.controller.footswitch.read = lambda no, nc, now: None  # stays "pressed"
    rig.hw.press_footswitch(False)
    rig.tick()
    assert not rig.hw.enable and rig.app.supervisor.permitted is False


def test_status_lines_report_the_dose():
    rig = Rig()
    rig.start_emitting()
    rig.run_ms(1000)
    status = rig.events("status")[-1]
    assert status["state"] == "EMITTING" and status["target_j"] == 800.0
    assert 9.0 < status["delivered_j"] < 11.0 and status["power_w"] > 9.9


def test_a_contact_glitch_is_not_a_release():
    rig = Rig()
    rig.set(key_on=True)
    rig.hw.press_footswitch()
    rig.press("arm_pressed")
    rig.set(footswitch_no_closed=False)  # NO bounces open for a tick, NC stays open: no release
    rig.set(footswitch_no_closed=True)
    rig.run_ms(3000)
    assert rig.state == "READY" and not rig.hw.enable


def test_a_broken_footswitch_wire_stays_a_fault_for_weeks():
    rig = Rig()
    rig.set(footswitch_nc_closed=False)  # NC wire broken: both contacts open
    rig.run_ms(100)
    assert rig.state == "FAULT"
    # Eight days in steps of a day (each tick sees the broken wire): past 2**29 ms, where an
    # unbounded age of the mismatch would wrap negative and read as no fault.
    for _ in range(8):
        rig.now_ms += 86400000
        rig.tick()
    rig.press("reset_pressed")
    assert rig.state == "FAULT", "the cause is still there"


def test_every_refused_arm_is_reported():
    rig = Rig()
    rig.press("arm_pressed")
    rig.press("arm_pressed")
    assert [e["reason"] for e in rig.events("refused")] == ["key switch off"] * 2


def test_supervisor_caps_the_duty_at_the_rated_power():
    rig = Rig()
    rig.start_emitting()
    rig.treatment.duty_steps[32] = 65528  # a corrupted set-point above the diode's 15 W rating
    rig.tick()
    assert not rig.hw.enable and rig.hw.duty_u16 == 0
    assert rig.app.supervisor.permitted is False


def test_slow_pulses_switch_the_enable_line_on_tick_boundaries():
    rig = Rig()
    from treatment import for_board

    rig.treatment = rig.app.controller.treatment = for_board({"power_w": 3.0, "dose_j_cm2": 4.0,
                                              "area_cm2": 100.0, "mode": "pulsed",
                                              "pulse_hz": 10, "duty_pct": 30}, rig.board)
    rig.start_emitting()
    pattern = []
    for _ in range(20):  # two 100 ms periods
        pattern.append(1 if rig.hw.enable else 0)
        rig.tick()
    assert pattern == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0] * 2, pattern  # 30 ms of every 100 ms
    # The dose counts the peak power while the line is on, nothing while it is off.
    before = rig.app.dosimeter.energy_mj
    rig.run_ms(1000)
    assert abs(rig.app.dosimeter.energy_mj - before - 3000) <= 10  # 3 W average for 1 s


def test_an_aged_diode_is_caught_by_the_power_monitor():
    rig = Rig()  # the sim board has a power monitor
    rig.start_emitting()
    rig.run_ms(1000)
    assert rig.state == "EMITTING"
    rig.hw.light_factor = 0.7
    for _ in range(30):
        rig.tick()
        if rig.state == "FAULT":
            break
    assert rig.state == "FAULT" and not rig.hw.enable
    assert rig.events("fault")[-1]["code"] == "OUTPUT_POWER_DEVIATION"


def test_ready_ends_by_itself_when_nothing_happens():
    rig = Rig()
    rig.arm()
    rig.run_ms(rig.board["timing"]["ready_timeout_ms"] - 100)
    assert rig.state == "READY"
    rig.run_ms(200)
    assert rig.state == "STANDBY" and rig.events("session")[-1]["end"] == "READY_TIMEOUT"


def test_a_long_pause_ends_the_session_with_its_partial_dose_recorded():
    rig = Rig()
    rig.start_emitting()
    rig.run_ms(2000)
    rig.hw.press_footswitch(False)
    rig.tick()
    assert rig.state == "PAUSED"
    rig.run_ms(rig.board["timing"]["paused_timeout_ms"] + 100)
    session = rig.events("session")[-1]
    assert rig.state == "STANDBY" and session["end"] == "PAUSED_TIMEOUT"
    assert 19.0 < session["delivered_j"] < 21.5 and session["target_j"] == 800.0


def test_a_press_shorter_than_the_debounce_does_not_emit_but_a_release_acts_at_once():
    rig = Rig()
    rig.arm()
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.hw.press_footswitch()
    rig.tick()  # 10 ms of contact: a bounce, not yet a press
    rig.hw.press_footswitch(False)
    rig.run_ms(100)
    assert rig.state == "READY" and not rig.hw.enable
    rig.press_footswitch()
    assert rig.state == "EMITTING"
    rig.hw.press_footswitch(False)
    rig.tick()
    assert rig.state == "PAUSED" and not rig.hw.enable


def test_every_session_end_is_reported_with_its_reason_and_dose():
    rig = Rig(dose_j_cm2=1.0, area_cm2=10.0)
    rig.start_emitting()
    rig.run_ms(1500)
    rig.press("ack_pressed")
    assert rig.state == "STANDBY"
    rig.arm()
    rig.press("arm_pressed")
    rig.arm()
    rig.set(interlock_closed=False)
    ends = [e["end"] for e in rig.events("session")]
    assert ends == ["COMPLETE", "DISARMED", "INTERLOCK_OPEN"], ends
    assert rig.events("session")[0]["delivered_j"] > 9.9


def test_the_arming_locks_keep_their_reasons_through_a_failed_tick():
    """Controller.lock: until the next boot, the first reason kept. block: for now, the latest
    reason. unblock: clears only its own reason. A lock is named before a block; a restart after
    a failed tick carries both over."""
    from logbook import JOURNAL_FULL

    rig = Rig()
    c = rig.app.controller
    c.block(JOURNAL_FULL)
    c.block("journal cannot be written (EIO): service needed")
    c.unblock(JOURNAL_FULL)  # not the reason now: stays
    assert c.blocked == "journal cannot be written (EIO): service needed"
    rig.arm()
    assert rig.state == "STANDBY" and rig.events("refused")[-1]["reason"] == c.blocked
    rig.app.lock("settings changed: restart the device to apply them")
    rig.app.lock("a later reason")
    assert c.locked == rig.app.supervisor.locked == \
        "settings changed: restart the device to apply them"
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and rig.events("refused")[-1]["reason"] == c.locked
    rig.hw.fail_next_sense = True
    rig.tick()
    assert rig.state == "FAULT" and rig.app.controller is not c  # restarted ...
    assert (rig.app.controller.locked, rig.app.controller.blocked) == (c.locked, c.blocked)
    rig.press("reset_pressed")
    rig.press("arm_pressed")
    assert rig.state == "STANDBY" and rig.events("refused")[-1]["reason"] == c.locked
    # A block for the journal's room goes when the room is back; a lock stays until a boot.
    rig = Rig()
    rig.app.controller.block(JOURNAL_FULL)
    rig.arm()
    assert rig.state == "STANDBY" and rig.events("refused")[-1]["reason"] == JOURNAL_FULL
    rig.app.controller.unblock(JOURNAL_FULL)
    rig.press("arm_pressed")
    assert rig.state == "READY"
