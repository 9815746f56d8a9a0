# The simulated ESP32 `machine` and plant, on both MicroPython interpreters the virtual device runs
# on (they run nowhere else): the 64-bit unix port and the chip interpreter (32-bit, single floats).
# Run by tests/test_sim_machine.py through tests/firmware/mpy_runner.py.
import json

import sim_machine as machine
import sim_plant
import sim_time as time
import simworld
from support import heap_bytes

_HERE = __file__.rsplit("/", 1)[0]
_REPO = _HERE + "/../.."
# How closely the plant follows an exact integration. In the chip interpreter's single floats
# (2**-23) each 10 ms step multiplies by exp(A t) rounded to that precision: measured 0.002 C off
# after 30 s of a 13 C rise, a tenth of what the ADC's 1 mV step resolves (about 0.02 C). In the
# 64-bit port's doubles, 1e-6 C.
_PLANT_C = 1e-6 if 1.0 + 2.0 ** -30 != 1.0 else 0.005


def _world(edit=None, **config):
    with open(_REPO + "/boards/sim.json") as f:
        board = json.load(f)
    if edit is not None:
        edit(board)  # a variant of the sim board
    config.setdefault("table_path", _REPO + "/host_tools/vdevice/data/" +
                      board["plant"]["thermistor_table"])
    simworld.WORLD = simworld.World(config, board)
    return simworld.WORLD


def _sim_board():
    with open(_REPO + "/boards/sim.json") as f:
        board = json.load(f)
    return board, _REPO + "/host_tools/vdevice/data/" + board["plant"]["thermistor_table"]


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
    assert w.plant.optical_w > 5.0, "the 50 % default really lights the diode in the plant"


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
    assert w.plant.optical_w == 0.0
    enable.value(1)
    assert abs(w.plant.optical_w - 7.9) < 1e-9  # the board's calibration point at duty 32000
    pwm.duty_u16(0)
    assert w.plant.optical_w == 0.0


def test_adc_reads_zero_below_100_mv_and_has_millivolt_resolution():
    w = _world()
    adc = machine.ADC(machine.Pin(34), atten=machine.ADC.ATTN_11DB)
    uv = adc.read_uv()
    assert uv % 1000 == 0 and 1500000 < uv < 1800000  # 25 C: about half the 3.3 V supply
    w.plant.heatsink_c = 400.0  # thermistor nearly a short: the node is below 100 mV
    assert adc.read_uv() == 0


def test_thermistor_follows_the_datasheet_table():
    w = _world()
    w.plant.noise_uv = 0
    for temp_c, ohm in ((25.0, 10000.0), (60.0, 2488.0), (100.0, 680.0)):
        w.plant.heatsink_c = temp_c
        expected = 3300000 * ohm / (10000 + ohm)
        assert abs(w.plant.thermistor_uv() - expected) < 1.0, temp_c


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
    assert abs(w.plant.electrical_w - full * 48000 / 65535) < 1e-9
    assert abs(w.plant.heat_w - (full * 48000 / 65535 - 12.4)) < 1e-9
    machine.Pin(26, machine.Pin.OUT, value=0)
    assert w.plant.electrical_w == 0.0 and w.plant.heat_w == 0.0
    time.sleep(100)
    assert w.plant.heatsink_c == 25.0 and w.plant.junction_c == 25.0


def test_the_diode_heats_below_the_lasing_threshold():
    w = _world()
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(4000)  # below the calibration's threshold (duty 5000): current, no light
    assert w.plant.optical_w == 0.0 and abs(w.plant.heat_w - full * 4000 / 65535) < 1e-9
    time.sleep(2000)
    assert w.plant.emitted_j == 0.0
    assert abs(w.plant.heatsink_c - 25.0 - w.plant.heat_w * r_ha) < 0.01, w.plant.heatsink_c
    assert w.plant.junction_c > w.plant.heatsink_c


def test_steady_state_rises_are_the_heat_times_the_thermal_resistances():
    w = _world(ambient_c=25.0)
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(48000)  # 12.4 W of light
    heat_w = full * 48000 / 65535 - 12.4
    time.sleep(2000)  # ~20 of the slow time constant (C_h R_ha ~ 90 s)
    assert abs(w.plant.heatsink_c - 25.0 - heat_w * r_ha) < 0.01, w.plant.heatsink_c
    assert abs(w.plant.junction_c - w.plant.heatsink_c - heat_w * r_jh) < 0.01, w.plant.junction_c
    assert abs(w.plant.emitted_j - 12.4 * 2000) < 1e-6
    assert abs(w.plant.max_true_c - w.plant.heatsink_c) < 1e-6
    assert abs(w.plant.max_junction_c - w.plant.junction_c) < 1e-6


def test_a_fan_failure_raises_the_steady_state_to_the_fan_off_resistance():
    w = _world(ambient_c=25.0, events=[{"at_s": 2000.5, "fault": "fan_failure"}])
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(48000)
    heat_w = full * 48000 / 65535 - 12.4
    time.sleep(2000)
    assert w.plant.fan_running and abs(w.plant.heatsink_c - 25.0 - heat_w * r_ha) < 0.01
    time.sleep(6000)  # fan off: the slow time constant grows to ~460 s
    assert not w.plant.fan_running
    assert abs(w.plant.heatsink_c - 25.0 - heat_w * r_off) < 0.01, w.plant.heatsink_c
    assert abs(w.plant.junction_c - w.plant.heatsink_c - heat_w * r_jh) < 0.01
    assert w.trace["inputs"] == [2000, 500000, "fault", "fan_failure"]


def test_the_junction_is_hotter_than_the_heatsink_while_emitting():
    w = _world()
    p = w.plant
    _emit(48000)
    for _ in range(20):
        time.sleep_ms(500)
        assert p.junction_c > p.heatsink_c + 0.5, (p.junction_c, p.heatsink_c)
    assert p.max_junction_c > p.max_true_c


def test_the_plant_follows_an_independent_integration_and_keeps_the_peak_after_dark():
    w = _world(ambient_c=22.0)
    p = w.plant
    c_j, r_jh, c_h, r_ha, r_off, full = _plant(w)
    _emit(65535)  # ~17 W of light from ~48 W (the duty is 65528 at 13 bits)
    heat_w = p.heat_w
    assert abs(heat_w - (full * 65528 / 65535 - p.optical_w)) < 1e-9
    lit_junction = lit_sink = 22.0
    for step, (tj, th) in enumerate(_rk4(22.0, 22.0, 22.0, heat_w, c_j, r_jh, c_h, r_ha, 30.0)):
        lit_junction, lit_sink = tj, th
        if step + 1 in (100, 500, 3000):  # 1 s, 5 s, 30 s
            time.sleep_ms((step + 1) * 10 - w.now_us // 1000)
            assert abs(p.junction_c - tj) < _PLANT_C and abs(p.heatsink_c - th) < _PLANT_C, step
    machine.Pin(26, machine.Pin.OUT, value=0)  # dark: the junction's heat drains into the sink
    dark, peak = (lit_junction, lit_sink), lit_sink
    for dark in _rk4(lit_junction, lit_sink, 22.0, 0.0, c_j, r_jh, c_h, r_ha, 20.0):
        peak = max(peak, dark[1])
    time.sleep(20)
    assert abs(p.junction_c - dark[0]) < _PLANT_C and abs(p.heatsink_c - dark[1]) < _PLANT_C
    assert peak > lit_sink + 0.05, "the heatsink keeps warming after the light stops"
    assert abs(p.max_true_c - peak) < _PLANT_C, (p.max_true_c, peak)
    assert abs(p.max_junction_c - lit_junction) < _PLANT_C


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
    assert w.trace["inputs"] == [1, 0, "fault", "thermistor_short"]
    w = _world(edit=lambda b: b["thermistor"]["divider"].update(ntc="top"))
    w.set_input("fault", "thermistor_short")
    assert _adc().read_uv() == 3100000


def test_a_stuck_thermistor_repeats_its_last_reading_while_the_plant_warms():
    w = _world()
    adc = _adc()
    last = adc.read_uv()
    w.set_input("fault", "thermistor_stuck")
    before = w.plant.thermistor_uv()
    _emit(65535)
    time.sleep(300)
    assert w.plant.heatsink_c > 35.0 and w.plant.thermistor_uv() < before - 100000  # really warmer
    assert [adc.read_uv() for _ in range(50)] == [last] * 50  # frozen, without noise
    # Stuck before the firmware ever read it: frozen at the reading of that moment.
    w = _world()
    w.set_input("fault", "thermistor_stuck")
    frozen = _adc().read_uv()
    assert 1500000 < frozen < 1800000
    w.plant.heatsink_c = 60.0
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
    assert w.plant.ambient_c == 35.0
    assert abs(w.plant.heatsink_c - 35.0 - heat_w * r_ha) < 0.01, w.plant.heatsink_c
    assert w.trace["inputs"] == [10, 0, "ambient_c", 35.0]


def test_events_at_the_same_instant_apply_in_the_order_given():
    events = [{"at_s": 1.0, "input": "key", "value": i % 2 == 0} for i in range(25)]
    events.append({"at_s": 1.0, "ambient_c": 30.0})
    events.append({"at_s": 1.0, "fault": "fan_failure"})
    w = _world(events=events)
    time.sleep(2)
    inputs = w.trace["inputs"]
    assert inputs[2::4] == ["key"] * 25 + ["ambient_c", "fault"]
    assert inputs[3:100:4] == [i % 2 == 0 for i in range(25)]
    assert machine.Pin(18, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0  # key on, last


def test_the_temperature_trace_records_both_nodes_every_second():
    w = _world()
    _emit(48000)
    time.sleep(3)
    rows = w.trace["temperature"]
    assert rows[0::4] == [0, 1, 2, 3] and rows[1::4] == [0, 0, 0, 0]  # seconds, microseconds
    assert rows[2] == rows[3] == 25000  # millidegrees
    for i in range(4, len(rows), 4):
        assert rows[i + 3] > rows[i + 2] > 25000
    assert w.trace["optical"] == [0, 0, 12400000] or w.trace["optical"][-3:] == [0, 0, 12400000]


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
        assert w.outputs == {} and w.trace["resets"][-1][2] == "watchdog"
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


# -- the watchdog against what is scheduled during a hang (issue 14, point 10) -------------------


def _hung_world(until_s=10.0):
    """Emitting from 0 s, the watchdog (500 ms) fed every 10 ms, loop_hang at 1.0 s; during the
    hang inputs, a fault, a serial line and a Timer callback are due, and more inputs after the
    watchdog's deadline."""
    events = [{"at_s": 1.0, "fault": "loop_hang"},
              {"at_s": 1.1, "input": "arm", "value": True},
              {"at_s": 1.2, "fault": "fan_failure"},
              {"at_s": 1.3, "serial": '{"cmd": "status"}'},
              {"at_s": 1.5, "input": "arm", "value": False},
              {"at_s": 1.6, "input": "footswitch", "value": True},
              {"at_s": 2.0, "input": "key", "value": True}]
    w = _world(until_s=until_s, events=events)
    w._serial = open("/dev/null", "wb")  # noqa: SIM115 - what the scenario runner's pipe is
    _emit(32000)
    wdt = machine.WDT(timeout=500)
    fired = []
    machine.Timer(0, mode=machine.Timer.PERIODIC, period=100,
                  callback=lambda t: fired.append(w.now_us))
    for _ in range(100):  # the control loop, up to the hang's start at 1.0 s
        time.sleep_ms(10)
        wdt.feed()
    return w, fired


def test_the_watchdog_bites_at_its_deadline_whatever_falls_inside_a_hang():
    w, fired = _hung_world()
    fed_us = w.wdt_fed_us
    assert fed_us == 1000000 and w.plant.optical_w > 0
    key = machine.Pin(18, machine.Pin.IN, machine.Pin.PULL_UP)
    _raises(simworld.HardReset, key.value)  # the read hangs; the watchdog bites
    deadline_us = fed_us + 500 * 1000 + 1
    assert w.now_us == deadline_us, w.now_us
    assert w.trace["resets"] == [(1, 500001, "watchdog")] and deadline_us == 1500001
    assert w.trace["optical"][-3:] == [1, 500001, 0], "the light goes off at the reset"
    # Before the deadline: the world's events and the timer, at their times. After it: nothing.
    inputs = w.trace["inputs"]
    assert inputs[0::4] == [1] * 5 and inputs[1::4] == [0, 100000, 200000, 300000, 500000], inputs
    assert inputs[2::4] == ["fault", "arm", "fault", "serial", "arm"]
    assert fired[-6:] == [1000000, 1100000, 1200000, 1300000, 1400000, 1500000], fired
    assert w.timers == {} and not w.plant.fan_running


def test_the_world_goes_on_after_the_watchdog_reset_in_its_own_order():
    w, fired = _hung_world()
    _raises(simworld.HardReset, machine.Pin(18, machine.Pin.IN).value)
    reset_us = w.now_us
    # The operator's pedal and key do not wait for the chip: after the reset (the boot sleeps),
    # each event lands at its own time, in the scenario's order.
    time.sleep_ms(500)
    time.sleep_ms(1000)
    inputs = w.trace["inputs"]
    assert inputs[20:] == [1, 600000, "footswitch", True, 2, 0, "key", True], inputs
    assert fired[-1] == 1500000 and len(fired) == 15  # the reset stopped the timer
    assert reset_us < 1600000 and w.now_us == reset_us + 1500000
    assert machine.Pin(18, machine.Pin.IN).value() == 0  # key on (active low)
    assert w.plant.optical_w == 0.0


def test_a_hang_that_ends_before_the_deadline_does_not_reset():
    events = [{"at_s": 0.2, "input": "arm", "value": True}]
    w = _world(events=events)
    wdt = machine.WDT(timeout=500)
    w.stall_us = 499000  # a read that takes 499 ms: slow, not hung
    machine.Pin(18, machine.Pin.IN).value()
    wdt.feed()
    assert w.now_us == 499000 and w.trace["resets"] == []
    assert w.trace["inputs"] == [0, 200000, "arm", True]
    time.sleep_ms(400)
    assert w.trace["resets"] == []


# -- the driver's enable stuck high during hardware-gated pulses (issue 14, point 7) --------------


def _gate(duty_u16=16384, freq=5000):
    """Hardware-gated pulses: the enable line driven by a PWM, as hw.py does for fast rates."""
    return machine.PWM(machine.Pin(26, machine.Pin.OUT, value=0), freq=freq, duty_u16=duty_u16)


def test_enable_stuck_during_a_gate_pwm_runs_the_diode_continuously_at_peak():
    w = _world()
    full = _plant(w)[5]
    laser = machine.PWM(machine.Pin(25), freq=5000, duty_u16=32000)  # 7.9 W peak
    gate = _gate(16384)  # 25 % of each 200 us period
    monitor = machine.ADC(machine.Pin(35), atten=machine.ADC.ATTN_11DB)
    sense = machine.Pin(39, machine.Pin.IN)
    assert abs(w.plant.optical_w - 7.9 * 0.25) < 1e-9
    gated_uv = monitor.read_uv()
    time.sleep(1)
    assert abs(w.plant.emitted_j - 7.9 * 0.25) < 1e-6  # the gate's exact on-time
    w.set_input("fault", "enable_stuck")
    # The driver's enable input is held high: the diode runs at the peak, whatever the gate does.
    assert abs(w.plant.optical_w - 7.9) < 1e-9
    assert abs(w.plant.heat_w - (full * 32000 / 65535 - 7.9)) < 1e-9
    # The photodiode sees the peak: four times the light (its calibration read backwards).
    assert abs(gated_uv - (200000 + 1800000 * 7.9 * 0.25 / 15)) <= 3000, gated_uv
    assert abs(monitor.read_uv() - (200000 + 1800000 * 7.9 / 15)) <= 3000
    levels = []
    for _ in range(40):
        time.sleep_us(13)  # every phase of the gate's period
        levels.append(sense.value())
    assert levels == [1] * 40
    emitted = w.plant.emitted_j
    time.sleep(1)
    assert abs(w.plant.emitted_j - emitted - 7.9) < 1e-6
    gate.deinit()  # the pedal released: the firmware stops the gate and drives enable low
    machine.Pin(26, machine.Pin.OUT, value=0)
    assert abs(w.plant.optical_w - 7.9) < 1e-9 and sense.value() == 1
    laser.duty_u16(0)  # only the current set-point darkens it now
    assert w.plant.optical_w == 0.0


def test_the_enable_sense_pin_reads_the_gate_pwm_level_of_the_moment():
    w = _world()
    _gate(16384)  # high for the first 50 us of every 200 us
    sense = machine.Pin(39, machine.Pin.IN)
    levels = []
    for _ in range(8):
        levels.append(sense.value())
        time.sleep_us(25)
    assert levels == [1, 1, 0, 0, 0, 0, 0, 0], levels
    assert w.now_us == 200
    assert sense.value() == 1  # the next period


# -- machine.Counter (the ESP32's PCNT), counting the edges at its source pin ---------------------


def _sense_counter():
    """As the firmware counts the enable line at the driver: Counter(0, Pin(sense), RISING)."""
    return machine.Counter(0, machine.Pin(39, machine.Pin.IN), edge=machine.Counter.RISING)


def test_a_counter_counts_the_periods_of_a_5_khz_gate():
    w = _world()
    counter = _sense_counter()
    assert counter.value(0) == 0
    _gate(16384, 5000)  # starts high: a rising edge now, then one every 200 us
    time.sleep_ms(10)
    assert counter.value(0) == 50  # the periods that began in the 10 ms
    time.sleep_ms(10)
    assert counter.value() == 50 and counter.value() == 50  # value() alone does not reset
    time.sleep_ms(10)
    assert counter.value(0) == 100 and counter.value() == 0
    assert w.now_us == 30000


def test_a_counter_counts_exactly_the_periods_begun_across_uneven_intervals():
    w = _world()
    counter = _sense_counter()
    time.sleep_us(1234)
    start_us = w.now_us
    _gate(40000, 150)  # a 6666.67 us period: no whole number of microseconds
    total = 0
    for step_us in (1, 6665, 1, 1, 10000, 3333, 3334, 12345, 99999, 7, 500000, 20000):
        time.sleep_us(step_us)
        got = counter.value(0)
        total += got
        elapsed_us = w.now_us - start_us
        # Periods begun in [start, now): the first at the start itself.
        begun = (elapsed_us * 150 + 999999) // 1000000
        assert total == begun, (elapsed_us, got, total, begun)
    assert total == 99  # 655.686 ms at 150 Hz: 98.35 periods, the 99th begun


def test_a_counter_counts_the_rising_edges_of_a_plain_output():
    _world()
    counter = _sense_counter()
    enable = machine.Pin(26, machine.Pin.OUT, value=0)
    for level in (1, 1, 0, 1, 0, 0, 1):
        enable.value(level)
        time.sleep_ms(1)
    assert counter.value(0) == 3
    enable.value(0)
    enable.value(1)  # a glitch within the same instant is still an edge
    assert counter.value(0) == 1
    falling = machine.Counter(1, machine.Pin(39), edge=machine.Counter.FALLING,
                              direction=machine.Counter.DOWN)
    enable.value(0)
    enable.value(1)
    enable.value(0)
    assert falling.value() == -2 and counter.value() == 1


def test_a_counter_on_a_stuck_enable_line_counts_nothing():
    w = _world()
    machine.PWM(machine.Pin(25), freq=5000, duty_u16=32000)
    counter = _sense_counter()
    _gate(16384, 5000)
    time.sleep_us(1100)  # in the low part of the 6th period
    assert counter.value(0) == 6
    w.set_input("fault", "enable_stuck")  # the line goes high and stays there
    assert counter.value(0) == 1
    for _ in range(5):
        time.sleep_ms(10)
        assert counter.value(0) == 0  # no edges: the gate's periods no longer show
    assert abs(w.plant.optical_w - 7.9) < 1e-9


def test_a_counter_sees_the_gate_restart_and_stop():
    w = _world()
    counter = _sense_counter()
    gate = _gate(16384, 5000)
    time.sleep_us(1050)  # inside the 6th period's pulse: 6 begun
    gate.deinit()
    machine.Pin(26, machine.Pin.OUT, value=0)
    time.sleep_ms(5)
    assert counter.value(0) == 6
    gate = _gate(16384, 5000)  # resumed: starts high again, a fresh period
    time.sleep_us(399)
    assert counter.value(0) == 2
    gate.duty_u16(32768)  # a new duty keeps the period running
    time.sleep_us(1)
    assert counter.value(0) == 0  # the third period begins at the very instant of this read:
    time.sleep_us(1)  # it counts at the next
    assert counter.value(0) == 1 and w.now_us == 1050 + 5000 + 401


def test_counter_construction_and_errors_follow_the_esp32_port():
    _world()
    pin = machine.Pin(39, machine.Pin.IN)
    counter = machine.Counter(0, pin)
    assert machine.Counter(0) is counter  # a singleton per PCNT unit, kept as it is
    assert (machine.Counter.RISING, machine.Counter.FALLING) == (1, 2)
    assert (machine.Counter.UP, machine.Counter.DOWN) == (1, 2)
    _raises(ValueError, machine.Counter, 8, pin)  # PCNT units 0..7
    _raises(ValueError, machine.Counter, -1, pin)
    _raises(TypeError, machine.Counter, "0", pin)
    _raises(ValueError, machine.Counter, 2, 40)  # not a pin
    _raises(TypeError, machine.Counter, 3)  # a new unit needs its source
    counter.deinit()
    _raises(RuntimeError, counter.value)
    counter.init(pin, edge=machine.Counter.RISING)
    assert counter.value() == 0
    assert machine.Counter(4, 39).value() == 0  # a pin number does as well as a Pin


def test_a_counter_counts_from_zero_again_when_reinitialised_and_stops_at_a_reset():
    w = _world()
    counter = _sense_counter()
    enable = machine.Pin(26, machine.Pin.OUT, value=0)
    enable.value(1)
    enable.value(0)
    counter.init(machine.Pin(39), edge=machine.Counter.RISING)
    assert counter.value() == 0
    enable.value(1)
    assert counter.value() == 1
    w.reset_pins("watchdog")  # the chip's reset stops every PCNT unit
    _raises(RuntimeError, counter.value)


def test_a_counter_glitch_filter_drops_pulses_shorter_than_it():
    _world()
    # 1 % of a 5 kHz period: 2 us pulses. The filter (at most 1023 cycles of 80 MHz, 12.8 us).
    narrow = machine.Counter(0, machine.Pin(39), filter_ns=5000)
    plain = machine.Counter(1, machine.Pin(39))
    _gate(655, 5000)
    time.sleep_ms(10)
    assert narrow.value() == 0 and plain.value() == 50


def test_reading_a_counter_allocates_nothing():
    import gc

    _world()
    counter = _sense_counter()
    _gate(16384, 5000)
    time.sleep_ms(10)
    counter.value(0)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(10):
        counter.value(0)
    assert gc.mem_alloc() == before


# -- as unkind as the chip ---------------------------------------------------------------------


def test_a_soft_reset_leaves_plain_outputs_driven_and_stops_the_pwms_low():
    w = _world()
    _emit(32000)  # enable high (a plain output), the current set by a PWM
    machine.Pin(27, machine.Pin.OUT, value=1)
    w.reset_pins("soft reset")
    assert w.pwm == {} and w.outputs == {26: 1, 27: 1, 25: 0}
    assert w.plant.optical_w == 0.0  # the current's PWM idles low: dark, though the enable is high
    assert machine.Pin(39, machine.Pin.IN).value() == 1  # and the enable line reads so
    w.reset_pins("watchdog")
    assert w.outputs == {} and machine.Pin(39, machine.Pin.IN).value() == 0


def test_the_rtc_and_its_memory_survive_resets_but_not_a_power_cut():
    w = _world()
    rtc = machine.RTC()
    assert rtc.datetime()[:3] == (2000, 1, 1) and rtc.memory() == b""  # power-on
    rtc.datetime((2026, 12, 6, 6, 10, 0, 0, 0))  # the ESP32's order: the weekday fourth
    rtc.memory(b"LC1")
    time.sleep_ms(61000)
    assert rtc.datetime()[:7] == (2026, 12, 6, 6, 10, 1, 1)  # it runs with virtual time
    w.reset_pins("soft reset")
    w.reset_pins("watchdog")
    assert rtc.datetime()[:7] == (2026, 12, 6, 6, 10, 1, 1) and rtc.memory() == b"LC1"
    _raises(ValueError, rtc.memory, bytes(2049))  # the ESP32 keeps 2 KB
    _raises(simworld.HardReset, w.set_input, "fault", "power_cut")
    assert rtc.datetime()[:3] == (2000, 1, 1) and rtc.memory() == b""
    started = _world(rtc_utc_s=1796515200 + 36000)  # a scenario may start with the clock set
    assert machine.RTC().datetime()[:7] == (2026, 12, 6, 6, 10, 0, 0)
    assert started.rtc_memory_bytes() == b"LC1"


def test_the_ds3231_keeps_its_time_through_a_power_cut_and_only_where_fitted():
    w = _world(ds3231=True)
    bus = machine.I2C(0, scl=machine.Pin(17), sda=machine.Pin(16))
    assert bus.readfrom_mem(0x68, 0x0F, 1) == b"\x80"  # fresh: its oscillator-stopped flag
    # 2026-12-06 23:59:58, a Sunday (its weekday register 7), then the flag cleared.
    bus.writeto_mem(0x68, 0, b"\x58\x59\x23\x07\x06\x12\x26")
    bus.writeto_mem(0x68, 0x0F, b"\x00")
    time.sleep_ms(3000)
    assert bus.readfrom_mem(0x68, 0, 7) == b"\x01\x00\x00\x01\x07\x12\x26"  # Monday
    _raises(simworld.HardReset, w.set_input, "fault", "power_cut")
    time.sleep_ms(1000)
    assert bus.readfrom_mem(0x68, 0, 7)[0] == 0x02 and bus.readfrom_mem(0x68, 0x0F, 1) == b"\x00"
    _raises(OSError, bus.readfrom_mem, 0x57, 0, 1)  # nothing else on the bus
    _world()  # a board without the part: nothing answers
    _raises(OSError, machine.I2C(1, scl=machine.Pin(17), sda=machine.Pin(16)).readfrom_mem,
            0x68, 0, 7)
    started = _world(ds3231=True, ds3231_utc_s=1796515200)  # a scenario may start it set
    assert started.ds3231_stopped is False


def test_input_only_pins_have_no_pulls():
    _world()
    # (GPIO 36 is the panel's encoder phase A on the sim board, held high by the encoder's own
    # resistors: 37 is wired to nothing)
    assert machine.Pin(37, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0  # floating
    assert machine.Pin(27, machine.Pin.IN, machine.Pin.PULL_UP).value() == 1


# -- 32-bit clean: the chip interpreter's small ints end at 2**30 - 1 ------------------------------


def _step(key, counter):
    """What the control loop asks of the world each tick: sleep, both clocks, a pin, the
    pulse counter (reading it here keeps its count from passing a small int too)."""
    time.sleep_ms(10)
    time.ticks_ms()
    time.ticks_us()
    key.value()
    return counter.value(0)


def test_the_clocks_run_past_2_pow_31_us_and_a_step_costs_what_it_did_at_the_start():
    # 2200 s: past 2**30 us (17.9 min) and 2**31 us (35.8 min), the firmware's clocks started
    # 5 s before their own wrap, a 5 kHz gate pulsing the enable line all along.
    start_ms = (1 << 30) - 5000
    w = _world(clock_start_ms=start_ms, until_s=3000.0,
               # As the scenario runner writes it: the time in whole us too (a single float
               # holds 2150 s only to 0.24 ms).
               events=[{"at_s": 2150.000001, "at_us": 2150000001, "input": "key",
                        "value": True}])
    key = machine.Pin(18, machine.Pin.IN, machine.Pin.PULL_UP)
    counter = _sense_counter()
    _gate(16384, 5000)
    time.sleep_ms(110)  # clear of the temperature trace's whole seconds
    early = [heap_bytes(_step, key, counter) for _ in range(3)]
    assert heap_bytes(time.ticks_ms) == 0 and heap_bytes(time.ticks_us) == 0
    begun = 0
    for _ in range(2200):
        time.sleep(1)
        begun += counter.value(0)
    assert begun == 2200 * 5000  # every period begun at 5 kHz, one every 200 us
    late = [heap_bytes(_step, key, counter) for _ in range(3)]
    assert late == early, (early, late)
    assert heap_bytes(time.ticks_ms) == 0 and heap_bytes(time.ticks_us) == 0
    elapsed_us = 2200 * 1000000 + 170000  # 110 ms, 3 steps, 2200 s, 3 steps
    assert time.ticks_ms() == (start_ms + elapsed_us // 1000) % (1 << 30)
    assert time.ticks_us() == (start_ms * 1000 + elapsed_us) % (1 << 30)
    assert w.origin_s * 1000000 + w.now_us == elapsed_us
    # The trace keeps its times as small ints: whole seconds, microseconds.
    assert w.trace["inputs"] == [2150, 1, "key", True]  # to the microsecond
    assert w.trace["temperature"][-4:-2] == [2200, 0]
    assert all(-(1 << 30) <= v < (1 << 30) for v in w.trace["temperature"])
    assert key.value() == 0  # the key event landed


def test_the_scenario_ends_at_its_time_past_2_pow_31_us():
    w = _world(until_s=2200.5)
    _raises(simworld.SimEnd, w.run_to_end)
    assert (w.origin_s, w.now_us) == (w.origin_s, 2200500000 - w.origin_s * 1000000)
    assert w.result()["now_s_us"] == [2200, 500000]


# -- the plant and the faults apart from the world (sim_plant, sim_faults) -----------------------


def test_the_plant_and_the_faults_import_no_clock_no_pins_and_no_world():
    import sim_faults

    def modules(module):
        return sorted(n for n in dir(module) if type(getattr(module, n)) is type(json))

    assert modules(sim_plant) == ["calibration", "math"]
    assert modules(sim_faults) == []  # they act on the world they are given, and its plant


def test_the_plant_runs_on_its_own_with_a_drive_and_the_time_that_passes():
    board, table_path = _sim_board()
    p = sim_plant.Plant(board, table_path, 25.0)
    p.drive(32000, True, 0, 0, 0)  # enabled: the calibration's 7.9 W
    assert abs(p.optical_w - 7.9) < 1e-9 and p.optical == [0, 0, 7900000]
    monitor = board["power_monitor"]
    assert abs(p.adc_uv(monitor["adc_pin"], 11) - (200000 + 1800000 * 7.9 / 15)) <= 3000
    p.advance(2500000)
    # Stamped by its own clock, from the world's beginning: the samples at 0, 1 and 2 s.
    assert p.temperature[0::4] == [0, 1, 2] and p.temperature[1::4] == [0, 0, 0]
    assert abs(p.emitted_j - 7.9 * 2.5) < 1e-6 and p.heatsink_c > 25.0
    p.drive(32000, False, 0, 0, 0)
    assert p.optical[3:] == [2, 500000, 0] and p.heat_w == 0.0
    p.heatsink_c = 60.0  # the datasheet's 2488 ohm, at the bottom of the 10 k divider
    assert abs(p.adc_uv(board["thermistor"]["adc_pin"], 11) - 3300000 * 2488 / 12488) <= 3000
    assert p.adc_uv(13, 11) == 0  # nothing on that pin


def test_the_plant_lights_a_gate_pwm_from_where_the_world_says_its_period_is():
    board, table_path = _sim_board()
    p = sim_plant.Plant(board, table_path, 25.0)
    p.drive(32000, False, 16384, 5000, 100)  # high for 50 us of every 200: now 100 us in, low
    assert abs(p.optical_w - 7.9 * 0.25) < 1e-9
    p.advance(100)
    assert p.emitted_j == 0.0  # dark until the next period begins
    p.advance(50)
    assert abs(p.emitted_j - 7.9 * 50e-6) < 1e-9
    p.advance(1000000 - 150)
    assert abs(p.emitted_j - 7.9 * 0.25) < 1e-6


def test_the_adc_noise_is_the_c_librarys_generator_within_small_ints():
    for seed in (0, 1, 0x7FFF, 1 << 15, (1 << 30) - 1):
        assert sim_plant._next_noise(seed) == (seed * 1103515245 + 12345) % (1 << 30), seed
    seed = 12345
    for _ in range(500):
        following = sim_plant._next_noise(seed)
        assert following == (seed * 1103515245 + 12345) % (1 << 30), seed
        seed = following
