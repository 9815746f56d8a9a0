# The simulated ESP32 `machine` and plant, on the MicroPython unix port (they run nowhere else).
# Run by tests/test_sim_machine.py through tests/firmware/mpy_runner.py.
import json
import math
import time

import machine
import simworld

_HERE = __file__.rsplit("/", 1)[0]
_REPO = _HERE + "/../.."


def _world(**config):
    with open(_REPO + "/boards/sim.json") as f:
        board = json.load(f)
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


def test_heatsink_warms_with_the_thermal_time_constant():
    w = _world(ambient_c=25.0)
    machine.Pin(26, machine.Pin.OUT, value=1)
    machine.PWM(machine.Pin(25), freq=5000, duty_u16=48000)  # 12.4 W
    heat_w = 12.4 * (1 / 0.35 - 1)
    steady_rise = heat_w * 0.5
    time.sleep(90)  # one time constant of virtual time
    rise = w.heatsink_c - 25.0
    assert abs(rise - steady_rise * (1 - math.exp(-1))) < 0.01, rise
    assert abs(w.emitted_j - 12.4 * 90) < 1e-6


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
