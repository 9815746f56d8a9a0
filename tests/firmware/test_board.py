# Board files: both shipped boards pass, and each kind of mistake is refused naming its field.
import board as board_file
from support import load_board, raises, raw_board


def _refused(mutate, field):
    data = raw_board("esp32-devkitc")
    mutate(data)
    e = raises(board_file.BoardError, board_file.validate, data)
    assert str(e).startswith(field + ":"), "expected an error naming %s, got %r" % (field, str(e))
    return str(e)


def test_shipped_boards_are_valid():
    for name in ("sim", "esp32-devkitc"):
        board = load_board(name)
        assert board["name"] == name
        assert board["loop_ms"] == 10
        assert board["timing"]["emission_delay_ms"] >= 1000


def test_laser_lines_refuse_strapping_pins():
    message = _refused(lambda b: b["laser"].update(enable_pin=12), "laser.enable_pin")
    assert "strapping" in message


def test_laser_lines_refuse_input_only_pins():
    _refused(lambda b: b["laser"].update(pwm_pin=35), "laser.pwm_pin")


def test_pins_cannot_be_shared():
    message = _refused(lambda b: b["indicators"].update(buzzer_pin=25), "indicators.buzzer_pin")
    assert "laser.pwm_pin" in message


def test_flash_and_uart_pins_are_refused():
    _refused(lambda b: b["inputs"]["arm"].update(pin=7), "inputs.arm.pin")
    _refused(lambda b: b["inputs"]["arm"].update(pin=1), "inputs.arm.pin")


def test_thermistor_must_be_on_adc1():
    message = _refused(lambda b: b["thermistor"].update(adc_pin=4), "thermistor.adc_pin")
    assert "ADC1" in message


def test_input_only_pins_have_no_pulls():
    def mutate(b):
        b["thermistor"]["adc_pin"] = 36
        b["inputs"]["arm"].update(pin=34, pull="up")

    _refused(mutate, "inputs.arm.pull")


def test_missing_input_is_named():
    _refused(lambda b: b["inputs"].pop("interlock"), "inputs.interlock")


def test_bad_numbers_are_refused():
    _refused(lambda b: b["laser"].update(pwm_freq_hz="5k"), "laser.pwm_freq_hz")
    _refused(lambda b: b["limits"].update(max_heatsink_c=float("nan")), "limits.max_heatsink_c")
    _refused(lambda b: b["limits"].update(max_heatsink_c=float("inf")), "limits.max_heatsink_c")
    _refused(lambda b: b["limits"].update(max_heatsink_c=True), "limits.max_heatsink_c")
    _refused(lambda b: b.update(loop_ms=2.5), "loop_ms")


def test_timing_stays_within_safe_bounds():
    _refused(lambda b: b["timing"].update(emission_delay_ms=500), "timing.emission_delay_ms")
    _refused(lambda b: b["timing"].update(footswitch_mismatch_ms=1000),
             "timing.footswitch_mismatch_ms")
    _refused(lambda b: b["timing"].update(status_period_ms=0), "timing.status_period_ms")


def test_a_tick_must_fit_the_chips_small_integers():
    message = _refused(lambda b: b.update(loop_ms=100), "loop_ms")
    assert "small integers" in message


def test_an_open_sensor_must_read_outside_the_linear_range():
    # At 2.0 V an open NTC would read about 2 V: inside the 11 dB range, i.e. a temperature.
    _refused(lambda b: b["thermistor"]["divider"].update(supply_v=2.0),
             "thermistor.divider.supply_v")


def test_the_limits_must_be_measurable():
    def mutate(b):
        b["thermistor"]["divider"]["fixed_ohm"] = 100000
        b["limits"]["max_heatsink_c"] = 80

    message = _refused(mutate, "limits.max_heatsink_c")
    assert "linear range" in message


def _point(i, point):
    def mutate(b):
        b["diode"]["calibration"][i] = point

    return mutate


def test_calibration_must_rise_and_cover_the_rating():
    _refused(_point(2, [4000, 0.6]), "diode.calibration[2]")
    _refused(_point(3, [16000, 0.1]), "diode.calibration[3]")
    _refused(_point(0, [0, 0.5]), "diode.calibration[0]")
    _refused(_point(6, [70000, 17.0]), "diode.calibration[6]")
    _refused(lambda b: b["diode"].update(max_power_w=20.0), "diode.calibration")


def test_a_board_needs_a_name():
    _refused(lambda b: b.update(name=""), "name")


def test_unknown_fields_are_refused():
    _refused(lambda b: b.update(lazer={}), "lazer")
    _refused(lambda b: b["inputs"].update(footswtich={"pin": 33, "active": "low"}),
             "inputs.footswtich")


def test_only_the_beta_model_is_accepted_for_now():
    message = _refused(lambda b: b["thermistor"].update(model="table"), "thermistor.model")
    assert "beta" in message


def test_unreadable_files_give_a_clear_error():
    e = raises(board_file.BoardError, board_file.load, "no/such/board.json")
    assert "cannot read" in str(e)


def test_defaults_are_filled_in():
    data = raw_board("esp32-devkitc")
    del data["timing"]
    del data["loop_ms"]
    board = board_file.validate(data)
    assert board["loop_ms"] == 10
    assert board["timing"]["emission_delay_ms"] == 2000
    assert board["timing"]["footswitch_mismatch_ms"] == 50
