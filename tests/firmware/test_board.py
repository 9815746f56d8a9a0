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
    _refused(lambda b: b["thermal"].update(shutdown_c=float("nan")), "thermal.shutdown_c")
    _refused(lambda b: b["thermal"].update(shutdown_c=float("inf")), "thermal.shutdown_c")
    _refused(lambda b: b["thermal"].update(shutdown_c=True), "thermal.shutdown_c")
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
        b["thermistor"]["divider"]["fixed_ohm"] = 1000
        b["thermistor"]["model"] = "beta"  # the table would refuse the divider's range first

    message = _refused(mutate, "thermal.shutdown_c")
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
    _refused(lambda b: b["diode"].update(max_power_w=17.5), "diode.calibration")
    _refused(lambda b: b["diode"].update(max_power_w=20.0), "diode.max_power_w")  # > rating
    _refused(_point(6, [65535, 19.0]), "diode.calibration[6]")  # beyond the diode's rating


def test_a_board_needs_a_name():
    _refused(lambda b: b.update(name=""), "name")


def test_unknown_fields_are_refused():
    _refused(lambda b: b.update(lazer={}), "lazer")
    _refused(lambda b: b["inputs"].update(footswtich={"pin": 33, "active": "low"}),
             "inputs.footswtich")


def test_thermistor_models_are_checked():
    message = _refused(lambda b: b["thermistor"].update(model="polynomial"), "thermistor.model")
    assert "steinhart-hart" in message
    _refused(_table_row(3, [-40, 500000]), "thermistor.table[3]")  # resistance must fall
    _refused(_table_row(3, [-45, 130400]), "thermistor.table[3]")  # temperature must rise

    def short_table(b):
        b["thermistor"]["table"] = b["thermistor"]["table"][10:20]  # -5..40 C only

    message = _refused(short_table, "thermistor.table")
    assert "linear range spans" in message

    def sh_without_anything(b):
        b["thermistor"].update(model="steinhart-hart")
        del b["thermistor"]["steinhart_hart"]
        del b["thermistor"]["points"]

    _refused(sh_without_anything, "thermistor.points")

    def bad_points(b):
        b["thermistor"].update(model="steinhart-hart", points=[[0, 32650], [25, 10000]])
        del b["thermistor"]["steinhart_hart"]

    _refused(bad_points, "thermistor.points")

    def rising_curve(b):  # a model that is not an NTC over the range: refused
        b["thermistor"].update(model="steinhart-hart", steinhart_hart=[1e-3, 2e-4, -5e-6])

    _refused(rising_curve, "thermistor")


def _table_row(i, row):
    def mutate(b):
        b["thermistor"]["table"][i] = row

    return mutate


def test_every_model_validates_on_the_shipped_boards():
    for model in ("table", "beta", "steinhart-hart"):
        data = raw_board()
        data["thermistor"]["model"] = model
        assert board_file.validate(data)["thermistor"]["model"] == model
    data = raw_board()
    data["thermistor"]["model"] = "steinhart-hart"
    del data["thermistor"]["steinhart_hart"]  # fitted from the three points instead
    board_file.validate(data)


def test_thermal_thresholds_must_be_ordered():
    message = _refused(lambda b: b["thermal"].update(derate_start_c=46.0), "thermal")
    assert "warning_c < derate_start_c < shutdown_c < rating_c" in message
    _refused(lambda b: b["thermal"].update(rating_c=44.0), "thermal")
    _refused(lambda b: b["thermal"].update(rise_window_s=2.5), "thermal.rise_window_s")
    _refused(lambda b: b["thermistor"].update(samples=4), "thermistor.samples")


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
