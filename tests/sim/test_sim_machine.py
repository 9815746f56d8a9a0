# The simulated ESP32 `machine` and plant, on the MicroPython unix port (they run nowhere else).
# Run by tests/test_sim_machine.py through tests/firmware/mpy_runner.py.
import json
import time

import machine
import simworld

_HERE = __file__.rsplit("/", 1)[0]
_REPO = _HERE + "/../.."


def _world(edit=None, **config):
    with open(_REPO + "/boards/sim.json") as f:
        board = json.load(f)
    if edit is not None:
        edit(board)  # a variant of the sim board
    config.setdefault("table_path", _REPO + "/host_tools/vdevice/data/" +
                      board["plant"]["thermistor_table"])
    simworld.WORLD = simworld.World(config, board)
    return simworld.WORLD


def _raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type:
        return
    raise AssertionError("expected %s" % exc_type.__name__)


def test_pwm_without_a_duty_starts_at_half_duty_and_emits():
    w = _world()
    machine.Pin(26, machine.Pin.OUT, value=1)  # enable high (a miswired or floating gate)
    pwm = machine.PWM(machine.Pin(25), freq=5000)
    assert pwm.duty_u16() == 32768
    assert w.optical_w > 5.0, "the 50 % default really lights the diode in the plant"


def test_pwm_rejects_out_of_range_duty():
    _world()
    pwm = machine.PWM(machine.Pin(25), freq=5000, duty_u16=0)
    _raises(ValueError, pwm.duty_u16, 65536)
    _raises(ValueError, pwm.duty_u16, -1)
    assert pwm.duty_u16() == 0


def test_pwm_duty_is_quantised_to_the_resolution_of_its_frequency():
    w = _world()
    machine.PWM(machine.Pin(25), freq=5000, duty_u16=12345)
    assert w.pwm[25][0] == 12345 >> 3 << 3  # 13 bits at 5 kHz


def test_optical_power_needs_enable_and_duty():
    w = _world()
    enable = machine.Pin(26, machine.Pin.OUT, value=0)
    pwm = machine.PWM(machine.Pin(25), freq=5000, duty_u16=32000)
    assert w.optical_w == 0.0
    enable.value(1)
    assert abs(w.optical_w - 7.9) < 1e-9  # the board's calibration point at duty 32000
    pwm.duty_u16(0)
    assert w.optical_w == 0.0


def test_adc_reads_zero_below_100_mv_and_has_millivolt_resolution():
    w = _world()
    adc = machine.ADC(machine.Pin(34), atten=machine.ADC.ATTN_11DB)
    uv = adc.read_uv()
    assert uv % 1000 == 0 and 1500000 < uv < 1800000  # 25 C: about half the 3.3 V supply
    w.heatsink_c = 400.0  # thermistor nearly a short: the node is below 100 mV
    assert adc.read_uv() == 0


def test_thermistor_follows_the_datasheet_table():
    w = _world()
    w.noise_uv = 0
    for temp_c, ohm in ((25.0, 10000.0), (60.0, 2488.0), (100.0, 680.0)):
        w.heatsink_c = temp_c
        expected = 3300000 * ohm / (10000 + ohm)
        assert abs(w.thermistor_uv() - expected) < 1.0, temp_c


def _plant(w):
    p = w.board["plant"]
    return (p["junction_capacity_j_per_c"], p["junction_to_heatsink_c_per_w"],
            p["heatsink_capacity_j_per_c"], p["heatsink_to_ambient_c_per_w"],
            p["heatsink_to_ambient_fan_off_c_per_w"], p["electrical_w_at_full_duty"])


def _emit(duty, enable=1):
    machine.Pin(26, machine.Pin.OUT, value=enable)
    return machine.PWM(machine.Pin(25), freq=5000, duty_u16=duty)


def _rk4(tj, th, ambient, heat_w, c_j, r_jh, c_h, r_ha, seconds, dt=0.01):
    """The two-node plant integrated independently (classical Runge-Kutta); yields each step."""
    def f(tj, th):
        flow = (tj - th) / r_jh
        return (heat_w - flow) / c_j, (flow - (th - ambient) / r_ha) / c_h

    for _ in range(round(seconds / dt)):  # a generator: a list of 3000 steps fragments the heap
        k1 = f(tj, th)
        k2 = f(tj + dt / 2 * k1[0], th + dt / 2 * k1[1])
        k3 = f(tj + dt / 2 * k2[0], th + dt / 2 * k2[1])
        k4 = f(tj + dt * k3[0], th + dt * k3[1])
        tj += dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        th += dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        yield tj, th


def test_heat_is_electrical_power_minus_light_while_the_driver_is_enabled():
    w = _world()
    full = _plant(w)[5]
    _emit(48000)
    assert abs(w.electrical_w - full * 48000 / 65535) < 1e-9
    assert abs(w.heat_w - (full * 48000 / 65535 - 12.4)) < 1e-9
    machine.Pin(26, machine.Pin.OUT, value=0)
    assert w.electrical_w == 0.0 and w.heat_w == 0.0
    time.sleep(100)
    assert w.heatsink_c == 25.0 and w.junction_c == 25.0


def test_the_diode_heats_below_the_lasing_threshold():
    w = _world()
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(4000)  # below the calibration's threshold (duty 5000): current, no light
    assert w.optical_w == 0.0 and abs(w.heat_w - full * 4000 / 65535) < 1e-9
    time.sleep(2000)
    assert w.emitted_j == 0.0
    assert abs(w.heatsink_c - 25.0 - w.heat_w * r_ha) < 0.01, w.heatsink_c
    assert w.junction_c > w.heatsink_c


def test_steady_state_rises_are_the_heat_times_the_thermal_resistances():
    w = _world(ambient_c=25.0)
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(48000)  # 12.4 W of light
    heat_w = full * 48000 / 65535 - 12.4
    time.sleep(2000)  # ~20 of the slow time constant (C_h R_ha ~ 90 s)
    assert abs(w.heatsink_c - 25.0 - heat_w * r_ha) < 0.01, w.heatsink_c
    assert abs(w.junction_c - w.heatsink_c - heat_w * r_jh) < 0.01, w.junction_c
    assert abs(w.emitted_j - 12.4 * 2000) < 1e-6
    assert abs(w.max_true_c - w.heatsink_c) < 1e-6
    assert abs(w.max_junction_c - w.junction_c) < 1e-6


def test_a_fan_failure_raises_the_steady_state_to_the_fan_off_resistance():
    w = _world(ambient_c=25.0, events=[{"at_s": 2000.5, "fault": "fan_failure"}])
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(48000)
    heat_w = full * 48000 / 65535 - 12.4
    time.sleep(2000)
    assert w.fan_running and abs(w.heatsink_c - 25.0 - heat_w * r_ha) < 0.01
    time.sleep(6000)  # fan off: the slow time constant grows to ~460 s
    assert not w.fan_running
    assert abs(w.heatsink_c - 25.0 - heat_w * r_off) < 0.01, w.heatsink_c
    assert abs(w.junction_c - w.heatsink_c - heat_w * r_jh) < 0.01
    assert w.trace["inputs"] == [2000500000, "fault", "fan_failure"]


def test_the_junction_is_hotter_than_the_heatsink_while_emitting():
    w = _world()
    _emit(48000)
    for _ in range(20):
        time.sleep_ms(500)
        assert w.junction_c > w.heatsink_c + 0.5, (w.junction_c, w.heatsink_c)
    assert w.max_junction_c > w.max_true_c


def test_the_plant_follows_an_independent_integration_and_keeps_the_peak_after_dark():
    w = _world(ambient_c=22.0)
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(65535)  # ~17 W of light from ~48 W (the duty is 65528 at 13 bits)
    heat_w = w.heat_w
    assert abs(heat_w - (full * 65528 / 65535 - w.optical_w)) < 1e-9
    lit_junction = lit_sink = 22.0
    for step, (tj, th) in enumerate(_rk4(22.0, 22.0, 22.0, heat_w, c_j, r_jh, c_h, r_ha, 30.0)):
        lit_junction, lit_sink = tj, th
        if step + 1 in (100, 500, 3000):  # 1 s, 5 s, 30 s
            time.sleep_ms((step + 1) * 10 - w.now_us // 1000)
            assert abs(w.junction_c - tj) < 1e-6 and abs(w.heatsink_c - th) < 1e-6, step
    machine.Pin(26, machine.Pin.OUT, value=0)  # dark: the junction's heat drains into the sink
    dark, peak = (lit_junction, lit_sink), lit_sink
    for dark in _rk4(lit_junction, lit_sink, 22.0, 0.0, c_j, r_jh, c_h, r_ha, 20.0):
        peak = max(peak, dark[1])
    time.sleep(20)
    assert abs(w.junction_c - dark[0]) < 1e-6 and abs(w.heatsink_c - dark[1]) < 1e-6
    assert peak > lit_sink + 0.05, "the heatsink keeps warming after the light stops"
    assert abs(w.max_true_c - peak) < 1e-6, (w.max_true_c, peak)
    assert abs(w.max_junction_c - lit_junction) < 1e-6


def _adc():
    return machine.ADC(machine.Pin(34), atten=machine.ADC.ATTN_11DB)


def test_an_open_thermistor_reads_the_supply_side_of_the_divider():
    w = _world()
    adc = _adc()
    assert 1500000 < adc.read_uv() < 1800000
    w.set_input("fault", "thermistor_open")
    assert adc.read_uv() == 3100000  # NTC at the bottom: the node goes to 3.3 V, clipped
    adc.atten(machine.ADC.ATTN_6DB)
    assert adc.read_uv() == 2200000
    assert w.trace["inputs"][-2:] == ["fault", "thermistor_open"]
    w = _world(edit=lambda b: b["thermistor"]["divider"].update(ntc="top"))
    w.set_input("fault", "thermistor_open")
    assert _adc().read_uv() == 0  # NTC at the top: the node goes to ground


def test_a_shorted_thermistor_reads_the_ground_side_of_the_divider():
    w = _world(until_s=10.0, events=[{"at_s": 1.0, "fault": "thermistor_short"}])
    adc = _adc()
    time.sleep_ms(999)
    assert adc.read_uv() > 1500000
    time.sleep_ms(1)
    assert adc.read_uv() == 0 and adc.read_u16() == 0
    assert w.trace["inputs"] == [1000000, "fault", "thermistor_short"]
    w = _world(edit=lambda b: b["thermistor"]["divider"].update(ntc="top"))
    w.set_input("fault", "thermistor_short")
    assert _adc().read_uv() == 3100000


def test_a_stuck_thermistor_repeats_its_last_reading_while_the_plant_warms():
    w = _world()
    adc = _adc()
    last = adc.read_uv()
    w.set_input("fault", "thermistor_stuck")
    before = w.thermistor_uv()
    _emit(65535)
    time.sleep(300)
    assert w.heatsink_c > 35.0 and w.thermistor_uv() < before - 100000  # really warmer
    assert [adc.read_uv() for _ in range(50)] == [last] * 50  # frozen, without noise
    # Stuck before the firmware ever read it: frozen at the reading of that moment.
    w = _world()
    w.set_input("fault", "thermistor_stuck")
    frozen = _adc().read_uv()
    assert 1500000 < frozen < 1800000
    w.heatsink_c = 60.0
    assert _adc().read_uv() == frozen


def test_unknown_faults_are_refused():
    w = _world()
    _raises(ValueError, w.set_input, "fault", "laser_on_fire")


def test_an_ambient_event_moves_the_steady_state():
    w = _world(ambient_c=25.0, events=[{"at_s": 10.0, "ambient_c": 35.0}])
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(48000)
    heat_w = full * 48000 / 65535 - 12.4
    time.sleep(2000)
    assert w.ambient_c == 35.0
    assert abs(w.heatsink_c - 35.0 - heat_w * r_ha) < 0.01, w.heatsink_c
    assert w.trace["inputs"] == [10000000, "ambient_c", 35.0]


def test_events_at_the_same_instant_apply_in_the_order_given():
    events = [{"at_s": 1.0, "input": "key", "value": i % 2 == 0} for i in range(25)]
    events.append({"at_s": 1.0, "ambient_c": 30.0})
    events.append({"at_s": 1.0, "fault": "fan_failure"})
    w = _world(events=events)
    time.sleep(2)
    inputs = w.trace["inputs"]
    assert inputs[1::3] == ["key"] * 25 + ["ambient_c", "fault"]
    assert inputs[2:75:3] == [i % 2 == 0 for i in range(25)]
    assert machine.Pin(18, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0  # key on, last


def test_the_temperature_trace_records_both_nodes_every_second():
    w = _world()
    _emit(48000)
    time.sleep(3)
    rows = w.trace["temperature"]
    assert rows[0::3] == [0, 1000000, 2000000, 3000000]
    assert rows[1] == rows[2] == 25000  # millidegrees
    for i in range(3, len(rows), 3):
        assert rows[i + 2] > rows[i + 1] > 25000
    assert w.trace["optical"] == [0, 12400000] or w.trace["optical"][-2:] == [0, 12400000]


def test_a_plant_that_would_emit_more_light_than_it_takes_is_refused():
    _raises(ValueError, _world, lambda b: b["plant"].update(electrical_w_at_full_duty=16.0))


def test_input_pins_read_the_contacts_with_their_electrical_sense():
    w = _world()
    key = machine.Pin(18, machine.Pin.IN, machine.Pin.PULL_UP)
    estop = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
    assert key.value() == 1 and estop.value() == 0  # key off (active low), e-stop released
    w.set_input("key", True)
    w.set_input("estop", True)
    assert key.value() == 0 and estop.value() == 1


def test_input_only_and_flash_pins_are_refused():
    _world()
    _raises(ValueError, machine.Pin, 34, machine.Pin.OUT)
    _raises(ValueError, machine.Pin, 7, machine.Pin.IN)


def test_ticks_wrap_at_2_pow_30_like_the_esp32():
    _world(clock_start_ms=(1 << 30) - 5)
    before = time.ticks_ms()
    time.sleep_ms(10)
    after = time.ticks_ms()
    assert after < before and time.ticks_diff(after, before) == 10
    assert time.ticks_add(before, 10) == after


def test_watchdog_cannot_be_stopped_and_resets_when_starved():
    w = _world()
    wdt = machine.WDT(timeout=100)
    assert not hasattr(wdt, "deinit")
    for _ in range(5):
        time.sleep_ms(50)
        wdt.feed()
    machine.Pin(26, machine.Pin.OUT, value=1)
    try:
        time.sleep_ms(150)
    except simworld.HardReset:
        assert w.outputs == {} and w.trace["resets"][-1][1] == "watchdog"
        return
    raise AssertionError("a starved watchdog must reset the chip")


def test_scenario_events_land_at_their_time_and_the_end_unwinds():
    w = _world(until_s=2.0, events=[{"at_s": 1.0, "input": "key", "value": True}])
    key = machine.Pin(18, machine.Pin.IN, machine.Pin.PULL_UP)
    time.sleep_ms(999)
    assert key.value() == 1
    time.sleep_ms(1)
    assert key.value() == 0
    try:
        time.sleep(5)
    except simworld.SimEnd:
        assert w.now_us == 2000000
        return
    raise AssertionError("the scenario's end must unwind the firmware")


def test_timer_callbacks_fire_at_their_virtual_deadlines():
    w = _world()
    fired = []
    periodic = machine.Timer(0)
    periodic.init(mode=machine.Timer.PERIODIC, period=100, callback=lambda t: fired.append(
        ("p", w.now_us)))
    machine.Timer(1, mode=machine.Timer.ONE_SHOT, period=250,
                  callback=lambda t: fired.append(("o", w.now_us)))
    time.sleep_ms(350)
    assert fired == [("p", 100000), ("p", 200000), ("o", 250000), ("p", 300000)], fired
    periodic.deinit()
    time.sleep_ms(500)
    assert len(fired) == 4


def test_real_time_mode_drops_a_host_stall_instead_of_jumping_the_clock():
    import utime

    w = _world(realtime=True, speed=20)
    start_ms = time.ticks_ms()
    # The host stalls for half a second of wall time (10 s of virtual time at x20).
    w._real_start_us = utime.ticks_add(w._real_start_us, -500000)
    assert time.ticks_diff(time.ticks_ms(), start_ms) <= 3  # at most the 2 ms catch-up
    time.sleep_ms(10)  # sleeping still takes its virtual time
    assert 10 <= time.ticks_diff(time.ticks_ms(), start_ms) <= 16


def test_the_watchdog_resets_at_its_deadline_and_records_the_cause():
    w = _world()
    machine.WDT(timeout=500)
    _raises(simworld.HardReset, time.sleep_ms, 5000)
    assert w.now_us == 500001  # at the deadline, not at the end of the sleep
    assert machine.reset_cause() == machine.WDT_RESET
    assert w.wdt_timeout_ms is None  # the reset stopped it until the firmware starts it again
