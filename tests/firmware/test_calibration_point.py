# Service calibration points (commands.py cal_point, treatment.CalibrationPoint): a fixed duty for
# a timed emission a power meter reads, armed and run like a treatment (key, interlock, warning,
# footswitch, supervisor), on a device that may have no valid settings yet.
from fakeflash import FakeFlash
from power_monitor import OUTPUT_POWER_DEVIATION
from support import PIN, Rig

NO_SETTINGS = "no settings stored: calibrate the device (service)"


def _point(rig, duty=32000, time_s=2, pin=PIN):
    assert rig.send({"cmd": "service", "pin": pin})["ok"] is True
    rig.set(key_on=True)
    return rig.send({"cmd": "cal_point", "duty": duty, "time_s": time_s})


def _run_point(rig):
    """The technician's foot: wait out the warning, press and hold until the point ends."""
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.press_footswitch()
    emitting_ms = 0
    while rig.state == "EMITTING" and emitting_ms < 120000:
        rig.tick()
        emitting_ms += rig.period_ms
    return emitting_ms


def test_a_point_emits_its_duty_for_its_time_then_the_treatment_comes_back():
    rig = Rig().attach_memory()
    treatment, selection = rig.app.treatment, rig.app.selection
    reply = _point(rig, duty=32003, time_s=2)
    assert reply["ok"] is True and reply["state"] == "READY", reply
    assert reply["duty"] % 8 == 0 and 32003 - 8 < reply["duty"] <= 32003  # 13-bit PWM at 5 kHz
    assert reply["time_s"] == 2 and abs(reply["power_w"] - 7.9) < 0.01  # the curve in use
    assert rig.app.commands.service_open  # a point is not a treatment: the session stays
    assert not rig.hw.enable  # armed only: the footswitch is still the trigger
    emitting_ms = _run_point(rig)
    assert rig.state == "COMPLETE" and not rig.hw.enable
    assert abs(emitting_ms - 2000) <= 2 * rig.period_ms, emitting_ms
    session = rig.records("session")[-1]
    assert session["protocol"] == "calibration" and session["end"] == "COMPLETE"
    assert rig.send({"cmd": "reset"})["state"] == "STANDBY"
    assert rig.app.treatment is treatment and rig.app.selection == selection
    assert rig.app.controller.treatment is treatment


def test_the_duty_is_held_while_the_pedal_is_down_and_the_supervisor_permits_it():
    rig = Rig().attach_memory()
    duty = _point(rig, duty=16000, time_s=3)["duty"]
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.press_footswitch()
    assert rig.state == "EMITTING" and rig.hw.enable and rig.hw.duty_u16 == duty
    assert rig.app.supervisor.permitted
    rig.hw.press_footswitch(False)  # lifted: dark, paused, the point's time kept
    rig.tick()
    assert rig.state == "PAUSED" and not rig.hw.enable
    assert rig.send({"cmd": "disarm"})["state"] == "STANDBY"
    rig.tick()
    assert rig.app.selection is None and rig.app.treatment.is_calibration is False


def test_a_diode_off_its_curve_is_measured_not_faulted():
    # The power monitor's deviation check compares with the curve a point is there to correct.
    rig = Rig().attach_memory()
    assert rig.app.controller.power_monitor is not None
    rig.hw.light_factor = 1.2
    _point(rig, duty=32000, time_s=2)
    _run_point(rig)
    assert rig.state == "COMPLETE" and rig.events("fault") == []
    rig.send({"cmd": "reset"})
    rig.hw.press_footswitch(False)
    rig.start_emitting()  # the same diode in a treatment: a fault
    rig.run_ms(1000)
    assert rig.app.controller.fault_code == OUTPUT_POWER_DEVIATION


def test_bad_points_are_refused_and_change_nothing():
    rig = Rig().attach_memory()
    assert "service session first" in rig.send({"cmd": "cal_point", "duty": 32000})["error"]
    rig.send({"cmd": "service", "pin": PIN})
    rig.set(key_on=True)
    treatment = rig.app.treatment
    for request, words in (({"duty": 3000}, "lasing threshold"),
                           ({"duty": 0}, "duty: must be a whole number"),
                           ({"duty": 32000, "time_s": 61}, "time_s"),
                           ({"duty": 32000, "watts": 3}, "unknown field")):
        request["cmd"] = "cal_point"
        reply = rig.send(request)
        assert reply["ok"] is False and words in reply["error"], (request, reply)
        assert rig.state == "STANDBY" and rig.app.treatment is treatment
    rig.set(key_on=False)
    refused = rig.send({"cmd": "cal_point", "duty": 32000})
    assert refused["ok"] is False and refused["error"] == "arm refused: key switch off"
    rig.tick()
    assert rig.state == "STANDBY" and rig.app.treatment is treatment


def test_without_settings_only_a_calibration_point_arms():
    rig = Rig(settings_problem=NO_SETTINGS).attach_memory(FakeFlash(), store=False)
    assert rig.app.settings.problem == NO_SETTINGS
    rig.set(key_on=True)
    refused = rig.send({"cmd": "arm"})
    assert refused["ok"] is False and refused["error"] == "arm refused: " + NO_SETTINGS
    assert rig.last_status is None or NO_SETTINGS in rig.last_status
    reply = _point(rig, duty=48000, time_s=1, pin="000000")  # the factory PIN, as no settings
    assert reply["ok"] is True, reply
    _run_point(rig)
    assert rig.state == "COMPLETE"


def test_without_settings_the_supervisor_vetoes_a_treatment_on_its_own():
    rig = Rig(settings_problem=NO_SETTINGS)
    rig.app.controller.calibration_only = None  # a state machine that forgot the rule
    rig.start_emitting()
    assert not rig.hw.enable and rig.app.supervisor.why == "not calibrated"
