# The power monitor: the photodiode's calibration, and the comparison of measured with commanded
# light over a window. Runs on CPython and on MicroPython.
import board as board_file
from power_monitor import OUTPUT_POWER_DEVIATION, PowerMonitor
from support import load_board, raises, raw_board

_UV_PER_W = 120000  # the sim board's photodiode: 200 mV at 0 W, 2.0 V at 15 W


def _monitor():
    return PowerMonitor(load_board()["power_monitor"], 10)  # 250 ms windows of 10 ms ticks


def _uv(watts):
    return 200000 + int(watts * _UV_PER_W)


def _run(monitor, true_w, commanded_w, ticks):
    """Feed `ticks` ticks of emission; return the first fault and after how many ticks."""
    for tick in range(1, ticks + 1):
        fault = monitor.update(_uv(true_w), int(commanded_w * 1e6), True)
        if fault is not None:
            return fault, tick
    return None, ticks


def test_the_calibration_converts_microvolts_to_milliwatts():
    m = _monitor()
    assert m.measured(200000) == 0 and m.measured(2000000) == 15000
    assert m.measured(_uv(7.5)) == 7500
    assert m.measured(150000) == 0  # below the zero point: no negative light


def test_the_right_light_passes_for_as_long_as_it_lasts():
    assert _run(_monitor(), 10.0, 10.0, 3000) == (None, 3000)
    assert _run(_monitor(), 10.8, 10.0, 3000)[0] is None  # +8 %: within the 10 % tolerance


def test_too_little_or_too_much_light_latches_within_a_window():
    # Aged to 70 %, 230 % as once measured, and just outside 10 % + the 0.1 W floor.
    for true_w in (7.0, 23.0, 8.8, 11.2):
        fault, ticks = _run(_monitor(), true_w, 10.0, 100)
        assert fault == OUTPUT_POWER_DEVIATION and ticks == 25, (true_w, ticks)


def test_at_low_power_the_tolerance_is_still_ten_percent():
    assert _run(_monitor(), 0.75 * 0.8, 0.75, 100)[0] == OUTPUT_POWER_DEVIATION
    assert _run(_monitor(), 0.75 * 0.95, 0.75, 100)[0] is None


def test_light_when_none_is_commanded_is_a_fault_but_noise_is_not():
    m = _monitor()
    assert _run(m, 0.05, 0.0, 100)[0] is None  # photodiode offset and noise
    assert _run(_monitor(), 2.0, 0.0, 100)[0] == OUTPUT_POWER_DEVIATION  # a driver stuck on


def test_short_presses_add_up_to_a_window():
    # 2.3 times the light, in presses of 50 ms with pauses between: the pauses keep the window.
    m = _monitor()
    fault = None
    for _ in range(5):
        for _ in range(5):
            fault = m.update(_uv(11.5), 5000000, True) or fault
        for _ in range(20):
            assert m.update(_uv(0.0), 0, False) is None
    assert fault == OUTPUT_POWER_DEVIATION
    m.restart()  # arming a new session starts afresh
    assert _run(m, 5.0, 5.0, 100)[0] is None


def _refused(mutate, field):
    data = raw_board()
    mutate(data)
    e = raises(board_file.BoardError, board_file.validate, data)
    assert str(e).startswith(field + ":"), (field, str(e))


def test_the_power_monitor_section_is_checked():
    _refused(lambda b: b["power_monitor"].update(adc_pin=25), "power_monitor.adc_pin")
    _refused(lambda b: b["power_monitor"].update(adc_pin=34), "power_monitor.adc_pin")  # taken
    _refused(lambda b: b["power_monitor"].update(calibration=[[200000, 0.0], [190000, 15.0]]),
             "power_monitor.calibration[1]")
    _refused(lambda b: b["power_monitor"].update(calibration=[[200000, 0.0], [2000000, 10.0]]),
             "power_monitor.calibration")  # cannot measure the board's 15 W
    _refused(lambda b: b["power_monitor"].update(calibration=[[50000, 0.0], [2000000, 15.0]]),
             "power_monitor.calibration[0]")  # below the ADC's linear range
    _refused(lambda b: b["power_monitor"].update(tolerance_pct=80), "power_monitor.tolerance_pct")
    _refused(lambda b: b["power_monitor"].update(calibration=[[200000, 0.0], [200500, 0.05],
                                                              [2000000, 15.0]]),
             "power_monitor.calibration[1]")  # within one ADC step of the previous point
    _refused(lambda b: b["power_monitor"].update(tolernce_pct=5), "power_monitor.tolernce_pct")


def test_the_power_monitor_is_optional():
    assert "power_monitor" not in load_board("esp32-devkitc")
