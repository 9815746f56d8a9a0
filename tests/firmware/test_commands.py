# The serial protocol (commands.py, docs/serial.md) on the real App: requests in as bytes on the
# serial port, replies out as JSON lines, the journal and the settings on a simulated flash.
import json

import journal as journal_module
from commands import LOCKOUT_MS, MAX_PIN_TRIES, SERVICE_IDLE_MS
from fakeflash import FakeFlash
from support import PIN, Rig


def _rig(**kwargs):
    return Rig(**kwargs).attach_memory()


def _snapshot(rig):
    """Everything a request could change."""
    c = rig.app.controller
    return (c.state, c.locked, c.blocked, c.fault_code, rig.app.treatment, rig.app.selection,
            rig.app.journal.last_n, sorted(rig.flash.files.items()), rig.app.commands.service_open,
            rig.hw.enable, rig.hw.restarts)


def _service(rig, pin=PIN):
    return rig.send({"cmd": "service", "pin": pin})


def test_status_answers_with_the_state_and_echoes_the_id():
    rig = _rig()
    reply = rig.send({"cmd": "status", "id": 7})
    assert reply["ok"] is True and reply["id"] == 7 and reply["cmd"] == "status"
    assert reply["state"] == "STANDBY" and reply["journal"]["last_n"] >= 1
    assert reply["settings"]["calibrated_on"] == "2026-11-01"
    assert reply["settings"]["due_on"] == "2027-11-01"


def test_status_and_the_boot_record_name_the_device_and_what_it_runs():
    # startup.main sets app.image from integrity.frozen_image() (None for a firmware in files: the
    # .mpy path, the 64-bit virtual device; the build id of the image it runs from otherwise),
    # app.manifest_id from the deployment's manifest and app.device_id from hw.device_id().
    rig = _rig()
    assert rig.send({"cmd": "status"})["image"] is None
    assert rig.records("boot")[-1]["image"] is None
    app = rig.app
    identity = (app.version, "0123456789abcdef", "fedcba9876543210", "240ac4123456")
    app.image, app.manifest_id, app.device_id = identity[1:]
    reply = rig.send({"cmd": "status"})
    assert (reply["version"], reply["image"], reply["manifest"], reply["device"]) == identity
    app.logbook.boot(app, "RESET", {}, 0)
    boot = rig.records("boot")[-1]
    assert (boot["version"], boot["image"], boot["manifest"], boot["device"]) == identity


def test_bad_requests_get_an_error_naming_the_problem_and_change_nothing():
    rig = _rig()
    before = _snapshot(rig)
    for line, words in (
            ("hello", "not JSON"),
            ("[1, 2]", "JSON object"),
            ('{"command": "status"}', "cmd"),
            ('{"cmd": 5}', "cmd"),
            ('{"cmd": "fire"}', "unknown command 'fire'"),
            ('{"cmd": "status", "now": true}', "unknown field 'now'"),
            ('{"cmd": "select", "protocol": "nope"}', "nope"),
            ('{"cmd": "select", "protocol": "knee", "skin_type": 9}', "skin_type"),
            ('{"cmd": "journal", "count": 99}', "count"),
            ('{"cmd": "status", "id": [1]}', "id"),
            ('{"cmd": "disarm"}', "no session"),
            ('{"cmd": "ack"}', "nothing to do"),
            ('{"cmd": "calibrate", "points": []}', "service session first"),
            ('{"cmd": "status", "pad": "%s"}' % ("x" * 600), "line too long")):
        reply = rig.send(line)
        assert reply["ok"] is False and words in reply["error"], (line, reply)
        assert _snapshot(rig) == before, line


def test_an_over_long_line_is_discarded_to_its_end_and_the_next_line_works():
    rig = _rig()
    rig.hw.serial_in = b"x" * 2000 + b"\n"
    rig.run_ms(1000)
    assert "line too long" in rig.replies()[-1]["error"]
    assert rig.send({"cmd": "status"})["ok"] is True


def test_select_changes_the_treatment_between_sessions_only():
    rig = _rig()
    reply = rig.send({"cmd": "select", "protocol": "knee", "skin_type": 5})
    assert reply["ok"] is True and reply["selected"] == {"protocol": "knee", "skin_type": 5}
    assert rig.app.treatment.target_j == reply["target_j"]
    assert rig.app.controller.treatment is rig.app.treatment
    assert json.loads(rig.flash.files["treatment.json"]) == {"protocol": "knee", "skin_type": 5}
    rig.arm()
    treatment = rig.app.treatment
    reply = rig.send({"cmd": "select", "protocol": "hip"})
    assert reply["ok"] is False and "only in STANDBY" in reply["error"]
    assert rig.app.treatment is treatment


def test_arm_only_arms_and_only_the_footswitch_starts_the_light():
    rig = _rig()
    rig.set(key_on=True)
    reply = rig.send({"cmd": "arm"})
    assert reply == {"ok": True, "cmd": "arm", "state": "READY"}
    rig.run_ms(rig.board["timing"]["emission_delay_ms"] + 1000)
    assert rig.state == "READY" and not rig.hw.enable
    for name in ("arm", "ack", "reset", "status"):
        rig.send({"cmd": name})
        assert not rig.hw.enable
    rig.press_footswitch()  # released first (it was), now pressed: light
    assert rig.state == "EMITTING" and rig.hw.enable


def test_arm_is_refused_with_the_reason():
    rig = _rig()
    reply = rig.send({"cmd": "arm"})
    assert reply["ok"] is False and reply["error"] == "arm refused: key switch off"
    assert rig.state == "STANDBY"


def test_disarm_ends_a_session_even_while_emitting():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms(1000)
    reply = rig.send({"cmd": "disarm"})
    assert reply["ok"] is True and reply["state"] == "STANDBY" and not rig.hw.enable
    session = rig.records("session")[-1]
    assert session["end"] == "DISARMED" and session["delivered_j"] > 0


def test_a_serial_arm_starts_a_new_supervisor_budget():
    rig = _rig(dose_j_cm2=0.2, area_cm2=100.0)  # 20 J at 10 W: 2 s
    rig.start_emitting()
    rig.run_ms(3000)
    assert rig.state == "COMPLETE"
    rig.send({"cmd": "ack"})
    rig.hw.press_footswitch(False)
    rig.run_ms(100)
    assert rig.app.supervisor.dose.energy_mj > 19000
    assert rig.send({"cmd": "arm"})["ok"] is True
    # The new budget begins with the new session's light, after the emission delay in the dark.
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.press_footswitch()
    assert rig.state == "EMITTING"
    assert rig.app.supervisor.dose.energy_mj <= 10 * rig.period_ms * 2  # 10 W, two ticks
    rig.run_ms(3000)
    assert rig.state == "COMPLETE"  # the second session's dose, not stopped by the budget


def test_reset_over_serial_clears_a_fault_only_once_its_cause_is_gone():
    rig = _rig()
    rig.set(estop_pressed=True)
    assert rig.state == "FAULT"
    reply = rig.send({"cmd": "reset"})
    assert reply["ok"] is False and "ESTOP stays latched" in reply["error"]
    rig.set(estop_pressed=False)
    assert rig.send({"cmd": "reset"}) == {"ok": True, "cmd": "reset", "state": "STANDBY"}
    assert [r["code"] for r in rig.records("fault")] == ["ESTOP"]


def test_every_service_command_is_refused_without_a_session():
    rig = _rig()
    before = _snapshot(rig)
    for request in ({"cmd": "calibrate", "points": [[0, 0], [65535, 20.0]], "date": "2026-11-21"},
                    {"cmd": "limits", "max_power_w": 5}, {"cmd": "pin", "new": "1111"},
                    {"cmd": "journal_export"}, {"cmd": "journal_clear", "through": 1},
                    {"cmd": "restart"}, {"cmd": "logout"}):
        reply = rig.send(request)
        assert reply["ok"] is False and "service session first" in reply["error"], request
        assert _snapshot(rig) == before, request


def test_the_service_commands_leave_no_module_behind():
    # service.py is imported for each service request and dropped after: between requests its
    # functions hold none of the chip's heap.
    import sys

    rig = _rig()
    assert _service(rig)["ok"] is True
    rig.set(key_on=True)
    for request in ({"cmd": "journal_export", "count": 1},
                    {"cmd": "cal_point", "duty": 30000, "time_s": 1}, {"cmd": "disarm"},
                    {"cmd": "limits", "max_power_w": 5}, {"cmd": "logout"}):
        reply = rig.send(request)
        assert reply["ok"] is True, reply
        assert "service" not in sys.modules, request


def test_five_wrong_pins_lock_the_service_out_across_a_reboot():
    rig = _rig()
    for _ in range(MAX_PIN_TRIES):
        reply = _service(rig, "9999")
        assert reply["ok"] is False and "wrong PIN" in reply["error"]
    reply = _service(rig)  # the right PIN, too late
    assert reply["ok"] is False and "locked" in reply["error"]
    assert not rig.app.commands.service_open
    # The count is on record: a reboot (a fresh app on the same flash) is still locked out.
    again = Rig().attach_memory(rig.flash)
    assert again.app.commands.pin_failures == MAX_PIN_TRIES
    assert "locked" in _service(again)["error"]
    # Counted from boot: still locked a second before its end, open at its end.
    again.run_ms(LOCKOUT_MS - 1000 - again.now_ms, every_ms=1000)
    assert "locked" in _service(again)["error"]
    again.run_ms(1000)
    assert _service(again)["ok"] is True
    assert again.app.commands.pin_failures == 0


def test_a_service_session_ends_on_idle_and_on_a_treatment():
    rig = _rig()
    assert _service(rig)["ok"] is True
    rig.run_ms(SERVICE_IDLE_MS - 1000, every_ms=1000)
    assert rig.app.commands.service_open
    rig.run_ms(1000)
    assert not rig.app.commands.service_open
    assert rig.events("service")[-1]["why"] == "idle timeout"
    assert _service(rig)["ok"] is True
    rig.arm()
    assert not rig.app.commands.service_open
    assert rig.events("service")[-1]["why"] == "a treatment began"
    assert "service session first" in rig.send({"cmd": "journal_export"})["error"]


def test_a_calibration_is_saved_checked_and_applied_by_a_restart():
    rig = _rig()
    _service(rig)
    bad = rig.send({"cmd": "calibrate", "points": [[0, 0], [100, 5.0], [50, 6.0]],
                    "date": "2026-11-21"})
    assert bad["ok"] is False and "calibration" in bad["error"]
    assert rig.app.settings.values["calibrated_on"] == "2026-11-01"
    points = [[0, 0], [8000, 0.0], [65535, 16.0]]
    reply = rig.send({"cmd": "calibrate", "points": points, "date": "2026-11-21",
                      "due_days": 180})
    assert reply["ok"] is True and reply["settings"]["due_on"] == "2027-05-20"
    assert rig.app.settings.values["calibration"] == points
    # The running loop keeps its parameters; arming waits for the restart that applies them.
    rig.set(key_on=True)
    reply = rig.send({"cmd": "arm"})
    assert reply["ok"] is False and "restart" in reply["error"]
    assert rig.send({"cmd": "restart"})["ok"] is True
    assert rig.hw.restarts == 1
    # The record says what was set (a refused request set nothing and left no record).
    records = rig.records("service")
    assert [r for r in records if r.get("calibrated_on") == "2026-11-21"] == [records[-1]]
    saved = records[-1]
    assert (saved["action"], saved["calibration"], saved["due_days"]) == ("calibration", points,
                                                                          180)


def test_restart_into_maintenance_leaves_the_flag_and_a_record():
    rig = _rig()
    _service(rig)
    before = _snapshot(rig)
    for request, words in (({"cmd": "restart", "maintenance": 1}, "true or false"),
                           ({"cmd": "restart", "now": True}, "unknown field")):
        reply = rig.send(request)
        assert reply["ok"] is False and words in reply["error"], reply
        assert _snapshot(rig) == before
    rig.set(key_on=True)
    rig.arm()
    refused = rig.send({"cmd": "restart", "maintenance": True})  # arming closed the session
    assert refused["ok"] is False and "service session first" in refused["error"]
    assert "maintenance" not in rig.flash.files and rig.hw.restarts == 0
    rig.send({"cmd": "disarm"})
    _service(rig)
    reply = rig.send({"cmd": "restart", "maintenance": True})
    assert reply["ok"] is True and reply["maintenance"] is True
    assert "maintenance" in rig.flash.files and rig.hw.restarts == 1
    assert rig.records("service")[-1]["action"] == "maintenance"


def test_limits_above_the_boards_are_refused():
    rig = _rig()
    _service(rig)
    limit = rig.board["diode"]["max_power_w"]
    reply = rig.send({"cmd": "limits", "max_power_w": limit + 1})
    assert reply["ok"] is False and "max_power_w" in reply["error"]
    assert rig.send({"cmd": "limits", "max_power_w": limit / 2})["ok"] is True
    saved = rig.records("service")[-1]
    assert (saved["action"], saved["limits"]) == ("limits", {"max_power_w": limit / 2})


def test_a_pin_change_applies_at_once():
    rig = _rig()
    _service(rig)
    assert rig.send({"cmd": "pin", "new": "12ab"})["error"] == "pin: must be 4 to 12 digits 0-9"
    assert rig.send({"cmd": "pin", "new": "246810"})["ok"] is True
    # On record that it changed, never what to: no PIN, no hash, no salt in the journal.
    saved = rig.records("service")[-1]
    assert saved["action"] == "pin" and set(saved) == {"ev", "action", "device", "utc_s", "boot",
                                                        "up_s", "n"}
    text = "".join(rig.app.journal.read(1, 1000))
    for secret in ("246810", rig.app.settings.values["pin"]["hash"],
                   rig.app.settings.values["pin"]["salt"]):
        assert secret not in text
    rig.send({"cmd": "logout"})
    assert _service(rig)["ok"] is False
    assert _service(rig, "246810")["ok"] is True


def test_the_journal_records_a_session_and_exports_a_verifiable_chain():
    rig = _rig(dose_j_cm2=0.2, area_cm2=100.0)
    rig.start_emitting()
    rig.hw.press_footswitch(False)
    rig.run_ms(500)
    rig.press_footswitch()
    rig.run_ms(3000)
    session = rig.records("session")[-1]
    assert session["end"] == "COMPLETE" and session["pauses"] == 1
    assert abs(session["delivered_j"] - session["target_j"]) < 0.1
    operator = rig.send({"cmd": "journal"})
    assert operator["records"][-1] == session
    _service(rig)
    lines, n = [], 1
    while True:
        reply = rig.send({"cmd": "journal_export", "from": n})
        lines += reply["lines"]
        if not reply["lines"] or journal_module.parse(lines[-1])[2]["n"] >= reply["last_n"]:
            break
        n = journal_module.parse(lines[-1])[2]["n"] + 1
    records, problems = journal_module.verify(lines, journal_module.GENESIS,
                                              (reply["last_n"], reply["last_hash"]))
    assert problems == [] and records[-1]["n"] == reply["last_n"]
    cleared = rig.send({"cmd": "journal_clear", "through": reply["last_n"]})
    assert cleared["ok"] is True and cleared["released_n"] == reply["last_n"]
    too_far = rig.send({"cmd": "journal_clear", "through": rig.app.journal.last_n + 5})
    assert too_far["ok"] is False


def test_the_journal_is_not_read_during_a_session():
    rig = _rig()
    rig.start_emitting()
    reply = rig.send({"cmd": "journal"})
    assert reply["ok"] is False and "only between sessions" in reply["error"]
    assert rig.state == "EMITTING"


def test_a_session_cut_by_a_power_loss_is_closed_at_the_next_boot():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms(1000)
    flash = rig.flash  # the power goes: nothing more is written, RTC memory is lost
    again = Rig().attach_memory(flash)
    end = again.records("session")[-1]
    assert end["arm_n"] == again.records("arm")[-1]["n"]
    # No checkpoint yet (the first comes after journal.checkpoint_s of emission): the dose is
    # known to be at most that much emission at 10 W, and the note says so.
    assert (end["end"], end["dose_from"], end["delivered_j"]) == ("RESET", "none", 0.0)
    peak_w = again.records("arm")[-1]["peak_w"]  # the light of the duty set for 10 W
    assert abs(peak_w - 10.0) < 0.1
    assert abs(end["delivered_max_j"] - peak_w * (30 + 0.5)) <= 0.001
    assert "between 0.000 J and %.3f J delivered" % end["delivered_max_j"] in end["note"]


def test_a_full_journal_refuses_arming_until_it_is_released():
    rig = _rig()
    rig.app.journal.file_bytes = 1  # every file is full: rotation needs released records
    rig.start_emitting()
    rig.send({"cmd": "disarm"})
    rig.hw.press_footswitch(False)
    assert rig.app.journal.full  # journal.old holds records nobody has exported
    reply = rig.send({"cmd": "arm"})
    assert reply["ok"] is False and "journal full" in reply["error"]
    _service(rig)
    last = rig.app.journal.last_n
    assert rig.send({"cmd": "journal_clear", "through": last})["ok"] is True
    assert not rig.app.journal.full
    rig.send({"cmd": "logout"})
    assert rig.send({"cmd": "arm"})["ok"] is True


def test_a_journal_filled_by_service_records_refuses_the_next_arm():
    rig = _rig()
    rig.app.journal.file_bytes = 1
    assert _service(rig)["ok"] is True  # its record fills the journal
    rig.send({"cmd": "logout"})
    assert rig.app.journal.full
    reply = rig.send({"cmd": "arm"})
    assert reply["ok"] is False and "journal full" in reply["error"]


def test_a_service_record_the_flash_refuses_blocks_sessions_instead_of_faulting():
    rig = _rig()

    def refuse(record):
        raise OSError(28, "no space")

    rig.app.journal.append = refuse
    reply = _service(rig, pin="0000")
    assert reply["ok"] is False and "wrong PIN" in reply["error"]
    assert rig.state == "STANDBY" and rig.events("fault") == []
    assert rig.app.controller.blocked.startswith("journal cannot be written")


def test_no_settings_lock_the_device_and_say_why():
    rig = Rig()
    flash = FakeFlash()
    rig.attach_memory(flash, store=False)
    assert rig.app.settings.problem.startswith("no settings stored")
