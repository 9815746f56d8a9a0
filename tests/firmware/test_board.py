# Board files: every shipped board passes, and each kind of mistake is refused naming its field.
import json

import board as board_file
import logbook
from support import REPO, load_board, raises, raw_board


def _refused(mutate, field):
    data = raw_board("esp32-devkitc")
    mutate(data)
    e = raises(board_file.BoardError, board_file.validate, data)
    assert str(e).startswith(field + ":"), "expected an error naming %s, got %r" % (field, str(e))
    return str(e)


def test_shipped_boards_are_valid():
    for name in ("sim", "sim-devkitc", "esp32-devkitc"):
        board = board_file.load(REPO + "/boards/" + name + ".json")  # as the device reads it
        assert board == load_board(name)
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


def test_the_journals_checkpoint_period_is_optional_whole_and_bounded():
    data = raw_board("esp32-devkitc")
    assert "journal" not in data and logbook.checkpoint_s(board_file.validate(data)) == 30
    data["journal"] = {"checkpoint_s": 10}
    assert logbook.checkpoint_s(board_file.validate(data)) == 10
    for bad in (0, 601, 2.5, "10", True, None):
        _refused(lambda b, v=bad: b.update(journal={"checkpoint_s": v}), "journal.checkpoint_s")
    _refused(lambda b: b.update(journal=[]), "journal")
    _refused(lambda b: b.update(journal={"checkpoint": 10}), "journal.checkpoint")


def test_the_serial_baud_rate_is_required_whole_in_range_and_carries_the_status_lines():
    for name in ("sim", "sim-devkitc", "esp32-devkitc"):
        assert load_board(name)["serial"] == {"baud": 115200}  # the ESP32 port's REPL default
    _refused(lambda b: b.pop("serial"), "serial")
    _refused(lambda b: b["serial"].pop("baud"), "serial.baud")
    _refused(lambda b: b["serial"].update(baud=4800), "serial.baud")
    _refused(lambda b: b["serial"].update(baud=2000000), "serial.baud")
    _refused(lambda b: b["serial"].update(baud=115200.5), "serial.baud")
    _refused(lambda b: b["serial"].update(baud="115200"), "serial.baud")
    _refused(lambda b: b["serial"].update(parity="none"), "serial.parity")
    # 57600 baud carries 1440 bytes in 250 ms: a status line may not take more than a quarter.
    message = _refused(lambda b: b["serial"].update(baud=57600), "serial.baud")
    assert "1440 bytes in a status period" in message, message

    def slower_status(b):
        b["serial"]["baud"] = 57600
        b["timing"]["status_period_ms"] = 500

    data = raw_board("esp32-devkitc")
    slower_status(data)
    assert board_file.validate(data)["serial"]["baud"] == 57600


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


# -- every object's fields -------------------------------------------------------------------------


def _objects(obj, path=""):
    """[(path, object)] for `obj` and every object within it."""
    found = [(path, obj)]
    for key in obj:
        if isinstance(obj[key], dict):
            found += _objects(obj[key], path + "." + key if path else key)
    return found


def _at(data, path):
    for key in path.split(".") if path else ():
        data = data[key]
    return data


def test_a_misspelled_field_is_refused_at_every_depth():
    # Each field of each object, in turn, loses its last letter ("pull" -> "pul"): an optional
    # field's default would otherwise take its place unseen.
    paths = []
    for board_name in ("sim", "esp32-devkitc"):
        original = raw_board(board_name)
        for path, obj in _objects(original):
            paths.append(path)
            for key in obj:
                data = json.loads(json.dumps(original))
                inner = _at(data, path)
                inner[key[:-1]] = inner.pop(key)
                field = (path + "." if path else "") + key[:-1]
                e = raises(board_file.BoardError, board_file.validate, data)
                message = str(e)
                assert message.startswith(field + ": unknown field (known: "), (field, message)
                for known in obj:  # the error lists the fields the object may have
                    assert known in message, (field, known, message)
    for path in ("", "laser", "indicators", "inputs", "inputs.estop", "thermistor",
                 "thermistor.divider", "thermal", "diode", "power_monitor", "limits", "timing",
                 "serial", "plant"):
        assert path in paths, path
    # Settings apply the calibration over a validated board and validate the copy again: every
    # default validate fills in must be a field it knows.
    for board_name in ("sim", "esp32-devkitc"):
        board = board_file.validate(raw_board(board_name))
        assert board_file.validate(json.loads(json.dumps(board))) == board


def test_the_description_is_text_and_the_plant_an_object():
    _refused(lambda b: b.update(description=["two", "lines"]), "description")
    _refused(lambda b: b.update(plant=[1, 2]), "plant")


# -- what an open wire reads ---------------------------------------------------------------------

# What each input must read when its wire breaks (the pin floats to its pull), written out here
# again rather than imported: the board check must agree with this table.
SAFE_WHEN_OPEN = {"key": False, "interlock": False, "estop": True, "footswitch_no": False,
                  "footswitch_nc": False, "arm": False, "reset": False, "ack": False}
_PARTNER = {"footswitch_no": "footswitch_nc", "footswitch_nc": "footswitch_no"}


def _expected(name, active, pull, external):
    """(field refused, or None if accepted) from the truth table: the pin floats to its pull,
    level 1 for up and 0 for down; it reads True where that level is the active one."""
    if pull != "none" and external not in (None, "none", pull):
        return "inputs.%s.external_pull" % name  # two pulls fighting: no level for sure
    floats_to = pull if pull != "none" else external
    if floats_to in (None, "none"):
        return "inputs.%s.pull" % name  # floating: nothing proves what it reads
    level_open = 1 if floats_to == "up" else 0
    reads = level_open == (1 if active == "high" else 0)
    return None if reads == SAFE_WHEN_OPEN[name] else "inputs.%s.active" % name


def polarity_boards(board_name="esp32-devkitc"):
    """Every input x active level x internal pull x external pull, as (name, spec, board data,
    the field expected refused or None), one at a time (192 boards at once crowd a heap). The
    footswitch's other contact is given the same active level and the pull that makes it safe,
    so each case tests one input."""
    for name in SAFE_WHEN_OPEN:
        for active in ("low", "high"):
            for pull in ("up", "down", "none"):
                for external in (None, "none", "up", "down"):
                    data = raw_board(board_name)
                    spec = {"pin": data["inputs"][name]["pin"], "active": active, "pull": pull}
                    if external is not None:
                        spec["external_pull"] = external
                    data["inputs"][name] = spec
                    if name in _PARTNER:
                        data["inputs"][_PARTNER[name]].update(
                            active=active, pull="up" if active == "low" else "down")
                    yield name, spec, data, _expected(name, active, pull, external)


def test_every_polarity_of_every_input_against_the_open_wire_truth_table():
    accepted = 0
    for name, spec, data, refused in polarity_boards():
        if refused is None:
            board_file.validate(data)
            accepted += 1
            continue
        e = raises(board_file.BoardError, board_file.validate, data)
        assert str(e).startswith(refused + ":"), (name, spec, refused, str(e))
        if refused.endswith(".active") or refused.endswith(".pull"):
            assert "wire breaks" in str(e), str(e)  # it says why
    # Each input: active low with a pull-up or high with a pull-down (or the reverse for the
    # e-stop), internal, external or both.
    assert accepted == 8 * 2 * 4, accepted


def test_the_unsafe_boards_of_issue_14_are_refused():
    message = _refused(lambda b: b["inputs"]["estop"].update(active="low"), "inputs.estop.active")
    assert "open wire reads high = not pressed" in message
    assert "use active high with a pull-up, or active low with a pull-down" in message
    message = _refused(lambda b: b["inputs"]["key"].update(pull="down"), "inputs.key.active")
    assert "open wire reads low = on" in message

    def pedal_active_high(b):
        b["inputs"]["footswitch_no"].update(active="high")

    message = _refused(pedal_active_high, "inputs.footswitch_no.active")
    assert "reads high = closed (pressed)" in message

    def typo(b):
        del b["inputs"]["key"]["pull"]
        b["inputs"]["key"]["pul"] = "up"

    message = _refused(typo, "inputs.key.pul")
    assert "known: pin, active, pull, external_pull" in message
    message = _refused(lambda b: b["inputs"]["key"].update(pull="none"), "inputs.key.pull")
    assert "floating" in message


def test_an_open_nc_contact_reads_open_and_disagrees():
    # NC active high with a pull-up: a broken NC wire would read closed (released), unseen until
    # the next press. Refused, with the reason.
    def nc_reads_released(b):
        b["inputs"]["footswitch_nc"].update(active="high", pull="up")
        b["inputs"]["footswitch_no"].update(active="high", pull="down")

    message = _refused(nc_reads_released, "inputs.footswitch_nc.active")
    assert "FOOTSWITCH_FAULT" in message


def test_the_footswitch_contacts_share_a_rail():
    # Each contact alone reads open when its wire breaks, but on opposite rails a cable shorted to
    # ground reads NO closed and NC open: a press. The same active level makes it a disagreement.
    def opposite_rails(b):
        b["inputs"]["footswitch_nc"].update(active="high", pull="down")

    message = _refused(opposite_rails, "inputs.footswitch_nc.active")
    assert "must be low like inputs.footswitch_no.active" in message

    data = raw_board("esp32-devkitc")
    for name in ("footswitch_no", "footswitch_nc"):  # both to 3.3 V, with pull-downs: fine
        data["inputs"][name].update(active="high", pull="down")
    board_file.validate(data)


def test_input_only_pins_take_a_declared_external_pull():
    def on_gpio36(**spec):
        def mutate(b):
            b["inputs"]["ack"] = dict({"pin": 36, "active": "low"}, **spec)
            b.pop("panel")  # its encoder has GPIO 36

        return mutate

    message = _refused(on_gpio36(pull="up"), "inputs.ack.pull")
    assert '"external_pull": "up" or "down"' in message
    _refused(on_gpio36(pull="none"), "inputs.ack.pull")  # floating
    _refused(on_gpio36(), "inputs.ack.pull")  # "none" by default
    _refused(on_gpio36(pull="none", external_pull="down"), "inputs.ack.active")  # reads pressed
    _refused(on_gpio36(pull="none", external_pull="sideways"), "inputs.ack.external_pull")
    data = raw_board("esp32-devkitc")
    on_gpio36(pull="none", external_pull="up")(data)
    board = board_file.validate(data)
    assert board["inputs"]["ack"] == {"pin": 36, "active": "low", "pull": "none",
                                      "external_pull": "up"}


def test_an_internal_pull_must_not_fight_the_external_one():
    message = _refused(lambda b: b["inputs"]["arm"].update(external_pull="down"),
                       "inputs.arm.external_pull")
    assert "against the internal pull-up" in message
    data = raw_board("esp32-devkitc")
    data["inputs"]["arm"]["external_pull"] = "up"  # both up: the external one for noise
    board_file.validate(data)


def test_the_operator_panel_is_checked_field_by_field():
    assert load_board("esp32-devkitc")["panel"]["eyewear"] is True
    _refused(lambda b: b["panel"].update(i2c=2), "panel.i2c")
    _refused(lambda b: b["panel"].update(i2c=1.0), "panel.i2c")  # a controller's number
    _refused(lambda b: b["panel"].update(sda_pin=35), "panel.sda_pin")  # input-only
    message = _refused(lambda b: b["panel"].update(encoder_a_pin=25), "panel.encoder_a_pin")
    assert "laser.pwm_pin" in message  # a pin already used
    _refused(lambda b: b["panel"]["select"].update(pull="none"), "panel.select.pull")  # floats
    _refused(lambda b: b["panel"]["back"].update(pin=37), "panel.back.pull")  # no pull there
    _refused(lambda b: b["panel"].pop("back"), "panel.back")
    _refused(lambda b: b["panel"].update(eyewear="yes"), "panel.eyewear")
    _refused(lambda b: b["panel"].update(contrast=5), "panel.contrast")  # unknown field
    # Beside a DS3231 on the same controller: the same two lines (one bus), else refused.
    rtc = {"part": "DS3231", "i2c": 0, "sda_pin": 16, "scl_pin": 17}
    data = raw_board("esp32-devkitc")
    data["rtc"] = dict(rtc)
    assert board_file.validate(data)["panel"]["sda_pin"] == 16
    message = _refused(lambda b: (b.update(rtc=rtc), b["panel"].update(scl_pin=15)),
                       "panel.scl_pin")
    assert "shares I2C controller 0" in message
    # Without "eyewear" the panel asks for none.
    assert board_file.validate(_without(raw_board("esp32-devkitc"), "eyewear"))["panel"][
        "eyewear"] is False


def test_the_battery_backed_clock_is_checked_field_by_field():
    def with_rtc(**change):
        def mutate(b):
            b.pop("panel")  # (its lines are the DS3231's too on this board's controller 0)
            b["rtc"] = dict({"part": "DS3231", "i2c": 0, "sda_pin": 16, "scl_pin": 17}, **change)
        return mutate

    data = raw_board("esp32-devkitc")
    with_rtc()(data)
    assert board_file.validate(data)["rtc"]["i2c"] == 0
    _refused(with_rtc(part="DS1307"), "rtc.part")
    for i2c in (2, 1.0, True, None):  # the controller's number, nothing else
        _refused(with_rtc(i2c=i2c), "rtc.i2c")
    _refused(with_rtc(sda_pin=35), "rtc.sda_pin")  # input-only


def _without(data, key):
    del data["panel"][key]
    return data


# -- the device's compact form of a board (board.compact, app.py) --------------------------------

_MODEL_FIELDS = ("table", "r25_ohm", "beta_k", "beta_pair_c", "steinhart_hart", "points")


def _rows(rows):
    return [list(row) for row in rows]


def test_a_compact_board_says_the_same_and_passes_its_checks_again():
    for name in ("sim", "sim-devkitc", "esp32-devkitc"):
        data = load_board(name)
        compact = board_file.compact(load_board(name))
        th = compact["thermistor"]
        assert _rows(th["table"]) == data["thermistor"]["table"]
        assert isinstance(th["table"], tuple) and isinstance(th["table"][0], tuple)
        assert [key for key in _MODEL_FIELDS if key in th] == ["table"]
        assert _rows(compact["diode"]["calibration"]) == data["diode"]["calibration"]
        assert isinstance(compact["diode"]["calibration"][0], tuple)
        if "power_monitor" in data:
            assert _rows(compact["power_monitor"]["calibration"]) == \
                data["power_monitor"]["calibration"]
        for key in data:  # everything else as it was
            if key not in ("thermistor", "diode", "power_monitor"):
                assert compact[key] == data[key], key
        # The settings' effective board shares the compact sections and is checked again.
        assert board_file.validate(compact) is compact and _rows(th["table"]) == \
            data["thermistor"]["table"]


def test_a_compact_board_keeps_the_fields_of_its_own_model():
    def compacted(**changes):
        data = load_board()
        th = data["thermistor"]
        for key in _MODEL_FIELDS:
            th.pop(key, None)
        th.update(changes)
        return board_file.compact(data)["thermistor"]

    beta = compacted(model="beta", r25_ohm=10000, beta_k=3988, beta_pair_c=[25, 100])
    assert [key for key in _MODEL_FIELDS if key in beta] == ["r25_ohm", "beta_k", "beta_pair_c"]
    fitted = compacted(model="steinhart-hart", points=[[0, 32650], [25, 10000], [85, 1072]])
    assert [key for key in _MODEL_FIELDS if key in fitted] == ["points"]
    assert fitted["points"] == ((0, 32650), (25, 10000), (85, 1072))
    given = compacted(model="steinhart-hart", steinhart_hart=[0.0011259, 0.00023462, 8.5989e-08],
                      points=[[0, 32650], [25, 10000], [85, 1072]])
    assert [key for key in _MODEL_FIELDS if key in given] == ["steinhart_hart"]


def test_settings_apply_to_a_compact_board():
    import settings as st
    from fakeflash import FakeFlash

    board = board_file.compact(load_board("esp32-devkitc"))
    flash = FakeFlash()
    st.Settings(flash, board).save({"calibration": board["diode"]["calibration"],
                                    "calibrated_on": "2026-11-01", "pin": {"new": "1234"},
                                    "limits": {"max_power_w": 12.0}})
    stored = st.Settings(flash, board)
    assert stored.problem is None and stored.board["diode"]["max_power_w"] == 12.0
    assert stored.board["thermistor"] is board["thermistor"]
    assert _rows(stored.values["calibration"]) == _rows(board["diode"]["calibration"])
    e = raises(st.SettingsError, stored.save, {"calibration": [[0, 0.0], [65535, 5.0]]})
    assert str(e).startswith("calibration:"), str(e)  # reaches only 5 W, below 12 W
