# Thermal protection through the real App on a fake hardware object: every level and every
# sensor fault, in the states where it must act. Runs on CPython and on MicroPython.
import thermal
from support import Rig
from thermal import DERATE_STEPS, median


def _fault(rig):
    events = rig.events("fault")
    return events[-1]["code"] if events else None


def test_median_ignores_a_spike():
    from array import array

    scratch = array("i", [0] * 5)
    assert median(array("i", [1650, 1651, 9999, 1649, 1650]), scratch) == 1650
    assert median(array("i", [5, 4, 3, 2, 1]), scratch) == 3


def test_warning_and_derating_are_shown_and_reduce_the_power_smoothly():
    # Full power with a working fan in the warmest room: the heatsink warms into the derating
    # band, where the reduced power holds it below shutdown.
    rig = Rig(power_w=15.0, dose_j_cm2=100.0, area_cm2=100.0, temp_c=35.0)
    rig.start_emitting()
    powers = [rig.app.controller.power_uw]

    def note_power():
        if rig.app.controller.power_uw != powers[-1]:
            powers.append(rig.app.controller.power_uw)

    assert _heatsink(rig, 35.0, 0.5, seconds=400, on_tick=note_power) is None
    levels = [e["level"] for e in rig.events("thermal")]
    assert levels == ["WARNING", "DERATE"], levels
    assert rig.state == "EMITTING" and _fault(rig) is None
    # Full power below the derate start, then one step at a time (settling, the power may step
    # back up by one when the heatsink dips below a step's threshold).
    full = rig.treatment.power_uw
    assert powers[0] == full and len(powers) > 8
    changes = [abs(powers[i] - powers[i + 1]) for i in range(len(powers) - 1)]
    assert max(changes) <= full // DERATE_STEPS + full // 100, changes
    assert powers[-1] < full * 3 // 4
    status = rig.events("status")[-1]
    assert status["thermal"] == "DERATE" and 0 < status["derate_pct"] < 75
    assert rig.app.controller.temp_c < rig.board["thermal"]["shutdown_c"]


def test_derated_light_is_what_the_dosimeter_counts():
    # Halfway through the derating band: about half the power.
    rig = Rig(power_w=10.0, dose_j_cm2=8.0, area_cm2=100.0, temp_c=43.5)
    rig.start_emitting()
    before = rig.app.dosimeter.energy_mj
    rig.run_ms(1000)
    half_w = rig.treatment.power_uw_steps[DERATE_STEPS // 2] / 1e6
    assert abs((rig.app.dosimeter.energy_mj - before) / 1000 - half_w) < 0.05


def test_shutdown_while_emitting_latches_over_temp():
    # From just below shutdown: a faster rise from further away would be more than the diode's
    # heat and the cooling explain, which the runaway check rightly latches first.
    rig = Rig(power_w=15.0, dose_j_cm2=60.0, area_cm2=100.0, temp_c=44.0)
    rig.start_emitting()
    rig.ramp_temp(44.0, 46.0, 0.2, until=lambda: rig.state == "FAULT")
    assert _fault(rig) == "OVER_TEMP" and not rig.hw.enable


def test_a_jump_no_heatsink_can_make_is_a_sensor_fault():
    rig = Rig()
    rig.set_temp(25.0)
    rig.run_ms(100)
    rig.set_temp(28.0)  # 3 C in one 10 ms tick
    rig.tick()
    assert rig.state == "FAULT" and _fault(rig) == "THERMISTOR_JUMP"


def test_rising_too_fast_is_a_fault_in_any_state():
    # Also after a (soft) reset more than 6.2 days into the chip's uptime, past half the tick
    # period, and across the tick counter's wrap.
    for start_ms in (0, (1 << 29) + 1000, (1 << 30) - 3000):
        rig = Rig(start_ms=start_ms)
        rig.ramp_temp(25.0, 40.0, 1.0, until=lambda r=rig: r.state == "FAULT")  # > 0.5 C/s
        assert _fault(rig) == "THERMAL_RATE", start_ms
        assert rig.app.controller.temp_c < 32.0, start_ms


def _heatsink(rig, ambient_c, r_c_per_w, seconds, fan_dies_at_s=None, dead_r=2.5, on_tick=None):
    """Drive the rig's thermistor with a heatsink warmed by the heat of the duty the firmware
    commands (electrical minus light, as the board declares it) and cooled to `ambient_c`."""
    board = rig.board
    cal_watts = rig.treatment.power_uw_steps
    full_w = board["diode"]["electrical_w_at_full_duty"]
    capacity = board["thermal"]["heatsink_capacity_j_per_c"]
    temp = rig.app.controller.temp_c
    for tick in range(int(seconds * 1000) // rig.period_ms):
        t_s = tick * rig.period_ms / 1000
        r = dead_r if fan_dies_at_s is not None and t_s >= fan_dies_at_s else r_c_per_w
        duty = rig.hw.duty_u16 if rig.hw.enable else 0
        heat_w = 0.0
        if duty:
            step = rig.app.controller.thermal.derate_step
            heat_w = full_w * duty / 65535 - cal_watts[step] / 1e6
        temp += (heat_w - (temp - ambient_c) / r) / capacity * rig.period_ms / 1000
        rig.set_temp(temp)
        rig.tick()
        if on_tick is not None:
            on_tick()
        if rig.state == "FAULT":
            return t_s
    return None


def test_no_false_runaway_with_working_cooling_in_the_warmest_room():
    # Full power, a working fan, the hottest room the board is specified for: the heatsink warms
    # into the derating band and stays there; the runaway check must never fire.
    rig = Rig(power_w=15.0, dose_j_cm2=100.0, area_cm2=100.0, temp_c=35.0)
    rig.start_emitting()
    assert _heatsink(rig, 35.0, 0.5, seconds=300) is None, _fault(rig)
    assert rig.state == "EMITTING" and rig.app.controller.thermal.level == thermal.DERATE


def test_runaway_when_the_fan_dies_whatever_the_starting_temperature():
    for start_c in (25.0, 33.0, 38.0):
        rig = Rig(power_w=15.0, dose_j_cm2=100.0, area_cm2=100.0, temp_c=start_c)
        rig.start_emitting()
        fault_s = _heatsink(rig, start_c, 0.5, seconds=900, fan_dies_at_s=5.0)
        assert _fault(rig) == "THERMAL_RUNAWAY", (start_c, _fault(rig))
        assert rig.app.controller.temp_c < rig.board["thermal"]["shutdown_c"], start_c
        assert fault_s is not None and not rig.hw.enable


def test_re_pressing_the_footswitch_does_not_hide_a_dead_fan():
    rig = Rig(power_w=15.0, dose_j_cm2=100.0, area_cm2=100.0, temp_c=25.0)
    rig.start_emitting()
    for _ in range(40):
        if _heatsink(rig, 25.0, 0.5, seconds=30, fan_dies_at_s=0.0) is not None:
            break
        rig.hw.press_footswitch(False)
        rig.tick()
        rig.hw.press_footswitch()
        rig.tick()
    assert _fault(rig) == "THERMAL_RUNAWAY"


def test_a_stuck_reading_during_emission_is_a_fault():
    rig = Rig(power_w=10.0, dose_j_cm2=80.0, area_cm2=100.0)
    rig.start_emitting()
    rig.hw.spread_uv = 0  # the ADC returns one value, again and again
    rig.run_ms(rig.board["thermal"]["stuck_s"] * 1000 + 100)
    assert _fault(rig) == "THERMISTOR_STUCK" and not rig.hw.enable


def test_a_live_reading_during_emission_is_not_stuck():
    rig = Rig(power_w=10.0, dose_j_cm2=80.0, area_cm2=100.0)
    rig.start_emitting()
    rig.run_ms(20000)
    assert rig.state == "EMITTING" and _fault(rig) is None


def test_sensor_faults_stop_emission_in_the_same_tick_and_are_distinct():
    cases = ((3100000, "THERMISTOR_OPEN"), (0, "THERMISTOR_SHORT"),
             (2700000, "THERMISTOR_RANGE"))
    for uv, code in cases:
        rig = Rig()
        rig.start_emitting()
        rig.hw.thermistor_uv = uv
        rig.tick()
        assert rig.state == "FAULT" and not rig.hw.enable and _fault(rig) == code, code
        assert rig.events("status")[-1]["temp_c"] is not None  # the last good reading
        rig.run_ms(100)
        assert rig.app.controller.temp_c is None


def test_reset_after_a_sensor_fault_needs_a_good_reading_and_starts_afresh():
    rig = Rig(temp_c=30.0)
    rig.hw.thermistor_uv = 0
    rig.tick()
    rig.press("reset_pressed")
    assert rig.state == "FAULT"
    rig.set_temp(30.0)
    rig.run_ms(100)
    rig.press("reset_pressed")
    assert rig.state == "STANDBY"
    rig.run_ms(1000)  # no stale jump or rate from before the fault
    assert rig.state == "STANDBY"


def test_levels_are_named_for_the_operator():
    assert thermal.LEVEL_NAMES[thermal.NORMAL] == "NORMAL"
    assert thermal.LEVEL_NAMES[thermal.DERATE] == "DERATE"


def test_noise_at_a_threshold_does_not_flicker_the_level_or_the_power():
    rig = Rig(power_w=10.0, dose_j_cm2=80.0, area_cm2=100.0, temp_c=39.9)
    rig.start_emitting()
    sensor = rig.app.controller.thermal.sensor
    low, high = int(sensor.uv_at(39.93)), int(sensor.uv_at(40.07))
    for i in range(1000):  # 10 s of a reading dithering across the 40 C warning threshold
        rig.hw.thermistor_uv = high if i % 2 else low
        rig.tick()
    assert len(rig.events("thermal")) <= 1
    # Inside the derating band, at a power whose heat the cooling can carry away there.
    rig = Rig(power_w=15.0, dose_j_cm2=100.0, area_cm2=100.0, temp_c=43.5)
    rig.start_emitting()
    powers = set()
    for i in range(1000):  # and across a derating step
        rig.hw.thermistor_uv = int(sensor.uv_at(43.45 if i % 2 else 43.55))
        rig.tick()
        if i > 200:
            powers.add(rig.app.controller.power_uw)
    assert rig.state == "EMITTING" and 0 not in powers
    assert len(powers) <= 2, powers
