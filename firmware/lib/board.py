# Board definitions are data: pins, thermistor, diode calibration and limits, read from a JSON
# file and checked field by field before anything drives a pin. The same code checks board files on
# the host (laserctl, tests) and on the device at boot, so a board that passes here boots there.
import json

import heap
from fields import is_number, is_whole
from micropython import const
from thermistor import Thermistor, linear_range_uv, share

# ESP32 (WROOM/WROVER) GPIO facts, from the ESP32 datasheet.
_GPIOS = (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33, 34,
          35, 36, 37, 38, 39)
_STRAPPING = (0, 2, 5, 12, 15)  # sampled at reset and toggled by the boot ROM
_UART0 = (1, 3)  # the USB serial port: the REPL and mpremote live here
_INPUT_ONLY = (34, 35, 36, 37, 38, 39)  # no output driver and no internal pulls
_ADC1 = (32, 33, 34, 35, 36, 37, 38, 39)  # ADC2 stops working while Wi-Fi is on
_ATTENUATIONS_DB = (0, 2.5, 6, 11)

_MODELS = ("table", "beta", "steinhart-hart")
INPUT_NAMES = ("key", "interlock", "estop", "footswitch_no", "footswitch_nc", "arm", "reset",
               "ack")
_PULLS = ("up", "down", "none")
_ROWS = (list, tuple)  # a curve's rows and points: lists from the file, tuples once compact()ed
# The thermistor models' own fields (compact() drops those of the models a board does not use).
_MODEL_FIELDS = ("table", "r25_ohm", "beta_k", "beta_pair_c", "steinhart_hart", "points")
_MAX_PWM_FREQ_HZ = const(40000)
# The REPL UART's rate, which the firmware image sets (MICROPY_HW_UART_REPL_BAUD, 115200 unless the
# board definition changes it): the firmware cannot change it, only pace its output to it.
_MIN_BAUD = const(9600)
_MAX_BAUD = const(921600)
# A status line (~350 bytes, budgeted at 512) may take at most a quarter of what the line carries
# in a status period: the rest is for events and replies.
_STATUS_SHARE = const(4)
_STATUS_LINE_BYTES = const(512)
# (field, default, lowest, highest): the warning must come before emission and last long enough
# to be noticed; a long contact window would switch the dual-contact check off.
_TIMING = (("emission_delay_ms", 2000, 1000, 10000),
           ("footswitch_mismatch_ms", 50, 10, 500),
           ("footswitch_debounce_ms", 20, 0, 200),
           ("ready_timeout_ms", 60000, 5000, 600000),
           ("paused_timeout_ms", 300000, 10000, 3600000),
           ("alarm_silence_ms", 120000, 10000, 600000),
           ("status_period_ms", 250, 50, 10000),
           ("watchdog_ms", 500, 50, 8000),
           ("overruns_per_s", 5, 1, 50))
# Every object's fields, by path ("inputs.*" is any input). A field not listed is refused: a
# misspelled one would otherwise be ignored and its default take its place unseen ("pul" for
# "pull" leaves a contact input floating). A new field goes here and into its check. (One string
# per object: a tuple of names costs the heap more, for as long as the firmware runs.)
_FIELDS = {
    "": "name description loop_ms laser indicators inputs thermistor thermal diode power_monitor "
        "limits timing serial journal rtc panel plant",
    "laser": "pwm_pin enable_pin pwm_freq_hz min_pulse_us enable_sense_pin",
    "indicators": "emission_led_pin buzzer_pin",
    "inputs": " ".join(INPUT_NAMES),
    "inputs.*": "pin active pull external_pull",
    "thermistor": "adc_pin atten_db samples divider model table r25_ohm beta_k beta_pair_c "
                  "steinhart_hart points",
    "thermistor.divider": "supply_v fixed_ohm ntc",
    "thermal": "warning_c derate_start_c shutdown_c hysteresis_c rating_c max_ambient_c jump_c "
               "stuck_s max_rise_c_per_s rise_window_s cooling_c_per_w heatsink_capacity_j_per_c "
               "runaway_window_s runaway_margin_c",
    "diode": "rating_w max_power_w electrical_w_at_full_duty calibration",
    "power_monitor": "adc_pin atten_db calibration tolerance_pct floor_w window_ms",
    "limits": "max_energy_j",
    "timing": " ".join(row[0] for row in _TIMING),
    "serial": "baud",
    "journal": "checkpoint_s",
    "rtc": "part i2c sda_pin scl_pin",
    "panel": "i2c sda_pin scl_pin encoder_a_pin encoder_b_pin select back eyewear",
    "panel.*": "pin active pull external_pull",
    # The virtual device's plant model (host_tools/vdevice/mpy/sim_plant.py); a real board has none.
    "plant": "thermistor_table electrical_w_at_full_duty junction_capacity_j_per_c "
             "junction_to_heatsink_c_per_w heatsink_capacity_j_per_c heatsink_to_ambient_c_per_w "
             "heatsink_to_ambient_fan_off_c_per_w adc_noise_uv",
}
# What each input must read when its wire breaks and the pin floats to its pull: the state that
# permits nothing. "What it is/what True reads as/what False reads as", the safe one with its
# reason where it is not plain. Only the e-stop is safe True (pressed).
_OPEN_WIRE = {
    "key": "the key switch/on/off",
    "interlock": "the interlock/closed/open",
    "estop": "the e-stop/pressed/not pressed",
    "footswitch_no": "the footswitch's NO contact/closed (pressed)/open (released)",
    # NC open beside the released NO contact: they disagree and FOOTSWITCH_FAULT latches within
    # footswitch_mismatch_ms. Read as closed (released), a broken NC wire would hide until a press.
    "footswitch_nc": "the footswitch's NC contact/closed (released)/open (so that it disagrees "
                     "with the released NO contact: FOOTSWITCH_FAULT)",
    "arm": "the arm button/pressed/not pressed",
    "reset": "the reset button/pressed/not pressed (held at boot it starts a maintenance boot, "
             "with the REPL)",
    "ack": "the acknowledge button/pressed/not pressed",
    # The operator panel's buttons (panel.py): a broken wire reads as never pressed.
    "select": "the panel's select button (the encoder's push)/pressed/not pressed",
    "back": "the panel's back button/pressed/not pressed",
}


class BoardError(ValueError):
    pass


def load(path):
    """Read and validate the board file at `path`; raise BoardError naming the bad field."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise BoardError("board file %s: cannot read it (%s)" % (path, e))
    except ValueError as e:
        raise BoardError("board file %s: not valid JSON (%s)" % (path, e))
    return validate(data)


def compact(data):
    """The validated board `data` made smaller in place for the chip's heap, with what it says
    unchanged: the thermistor's rows and the calibration points become tuples (a pair is one
    16-byte block as a tuple, two as the list JSON makes, whose items are over-allocated as it
    grew), and the fields of the thermistor models the board does not use go. The device does
    this once, after the board passed (app.py; the host keeps the file's lists); the result still
    passes validate(), as the settings' effective board must. Returns `data`."""
    th = data["thermistor"]
    model = th["model"]
    used = ("table",) if model == "table" else (
        ("r25_ohm", "beta_k", "beta_pair_c") if model == "beta" else
        ("steinhart_hart",) if "steinhart_hart" in th else ("points",))
    for key in _MODEL_FIELDS:
        if key not in used:
            th.pop(key, None)
    for key in ("table", "points"):
        if key in th:
            th[key] = _tuples(th[key])
    data["diode"]["calibration"] = _tuples(data["diode"]["calibration"])
    if "power_monitor" in data:
        data["power_monitor"]["calibration"] = _tuples(data["power_monitor"]["calibration"])
    return data


def _tuples(rows):
    return tuple(tuple(row) for row in rows)


def validate(data, sensor=None):
    """Check a board dict, fill in defaults, and return it. Raise BoardError on the first fault.
    `sensor`: the Thermistor already built from data["thermistor"] by that section's own
    validation (the settings' effective board keeps the design board's section), checked again
    here instead of built again; without it one is built. Either way, once the board passes, it
    is the one thermistor.shared() gives for this section."""
    _expect(isinstance(data, dict), "board", "must be a JSON object")
    _known_fields(data, "", "")
    _expect(isinstance(data.get("name"), str) and data["name"] != "", "name",
            "must be a non-empty string")
    _expect(isinstance(data.get("description", ""), str), "description", "must be text")
    _expect(isinstance(data.get("plant", {}), dict), "plant", "must be an object")
    _section(data, "laser")
    _section(data, "indicators")
    _section(data, "inputs")
    _section(data, "thermistor")
    _section(data, "thermal")
    _section(data, "diode")
    _section(data, "limits")
    _section(data, "serial")
    timing = data.setdefault("timing", {})
    _expect(isinstance(timing, dict), "timing", "must be an object")
    # Optional, and not filled in when absent (logbook.checkpoint_s() gives the default): a 13th key
    # would grow the table of every copy of the board (12 slots to 17), and where those land
    # splits the chip's heap (docs/chip.md).
    journal = data.get("journal", {})
    _expect(isinstance(journal, dict), "journal", "must be an object")

    used = {}
    laser = data["laser"]
    _output_pin(laser, "pwm_pin", "laser.pwm_pin", used)
    _output_pin(laser, "enable_pin", "laser.enable_pin", used)
    _number(laser, "pwm_freq_hz", "laser.pwm_freq_hz", 100, _MAX_PWM_FREQ_HZ)
    # The shortest enable pulse after which the driver's current has settled (its datasheet).
    _number(laser, "min_pulse_us", "laser.min_pulse_us", 0, 10000, 10)
    if "enable_sense_pin" in laser:  # optional: reads the enable line back at the driver
        _gpio(laser["enable_sense_pin"], "laser.enable_sense_pin")
        _claim(laser["enable_sense_pin"], "laser.enable_sense_pin", used)
    ind = data["indicators"]
    _output_pin(ind, "emission_led_pin", "indicators.emission_led_pin", used)
    _output_pin(ind, "buzzer_pin", "indicators.buzzer_pin", used)

    inputs = data["inputs"]
    for name in INPUT_NAMES:
        _input(inputs, name, used)
    # Both contacts to the same rail: a cable shorted to either rail makes them agree (closed
    # and closed, or open and open), a disagreement that latches, never a press.
    _expect(inputs["footswitch_nc"]["active"] == inputs["footswitch_no"]["active"],
            "inputs.footswitch_nc.active", "must be %s like inputs.footswitch_no.active: with "
            "the contacts on opposite rails, a cable shorted to one rail reads as a press"
            % inputs["footswitch_no"]["active"])

    _thermistor(data["thermistor"], used)
    _diode(data["diode"])
    if "power_monitor" in data:
        _power_monitor(data["power_monitor"], used, data["diode"]["max_power_w"])
    if "rtc" in data:
        _rtc(data["rtc"], used)
    if "panel" in data:
        _panel(data["panel"], data.get("rtc"), used)

    _thermal(data["thermal"])
    _number(data["limits"], "max_energy_j", "limits.max_energy_j", 1, 100000)

    _number(data, "loop_ms", "loop_ms", 1, 100, 10)
    _expect(is_whole(data["loop_ms"]), "loop_ms", "must be a whole number of ms")
    # The dosimeter multiplies microwatts by milliseconds: keep two ticks' worth within the
    # ESP32's small integers, or every tick would allocate a big integer.
    _expect(data["diode"]["max_power_w"] * 1e6 * data["loop_ms"] * 2 < (1 << 30), "loop_ms",
            "%d ms at %g W is too much energy per tick for the chip's small integers"
            % (data["loop_ms"], data["diode"]["max_power_w"]))
    for key, default, low, high in _TIMING:
        _number(timing, key, "timing." + key, low, high, default)
        _expect(is_whole(timing[key]), "timing." + key, "must be a whole number of ms")
    _expect(timing["ready_timeout_ms"] > timing["emission_delay_ms"], "timing.ready_timeout_ms",
            "must be longer than timing.emission_delay_ms, or READY would end before it can emit")
    # A hung loop keeps the last outputs until the watchdog resets the chip: short, but never
    # shorter than a few ticks, or a legitimately slow tick (a status line) would reset it.
    _expect(timing["watchdog_ms"] >= 5 * data["loop_ms"], "timing.watchdog_ms",
            "must be at least 5 ticks (%d ms)" % (5 * data["loop_ms"]))
    _serial(data["serial"], timing["status_period_ms"])
    if "checkpoint_s" in journal:
        _number(journal, "checkpoint_s", "journal.checkpoint_s", 1, 600)
        _expect(is_whole(journal["checkpoint_s"]), "journal.checkpoint_s",
                "must be a whole number of seconds")
    share(data["thermistor"], _thermistor_range(data, sensor))
    return data


def _serial(serial, status_period_ms):
    _number(serial, "baud", "serial.baud", _MIN_BAUD, _MAX_BAUD)
    baud = serial["baud"]
    _expect(is_whole(baud), "serial.baud", "must be a whole number of bits per second")
    per_status = baud // 10 * status_period_ms // 1000  # 8N1: ten bits a byte
    _expect(per_status >= _STATUS_SHARE * _STATUS_LINE_BYTES, "serial.baud",
            "%d baud carries %d bytes in a status period (timing.status_period_ms %d): a status "
            "line (budgeted at %d bytes) may take at most a quarter of that; raise the baud rate "
            "or the status period" % (baud, per_status, status_period_ms, _STATUS_LINE_BYTES))


def _rtc(rtc, used):
    """The optional battery-backed clock: a DS3231 on one of the ESP32's two I2C controllers
    (ds3231.py). Its lines need pull-ups (the usual DS3231 modules carry them)."""
    _expect(isinstance(rtc, dict), "rtc", "must be an object")
    _expect(rtc.get("part") == "DS3231", "rtc.part", 'must be "DS3231" (the part the firmware '
            "drives), got %r" % (rtc.get("part"),))
    _expect(is_whole(rtc.get("i2c")) and rtc["i2c"] in (0, 1), "rtc.i2c",
            "must be 0 or 1 (the ESP32's I2C controllers), got %r" % (rtc.get("i2c"),))
    _output_pin(rtc, "sda_pin", "rtc.sda_pin", used)
    _output_pin(rtc, "scl_pin", "rtc.scl_pin", used)


def _panel(panel, rtc, used):
    """The optional operator panel (panel.py): a 128x64 SSD1306 display at I2C address 0x3C, a
    rotary encoder on the chip's pulse counter and two buttons. The display may share an I2C
    controller with the DS3231, on the same two lines (one bus, two addresses)."""
    _expect(isinstance(panel, dict), "panel", "must be an object")
    _expect(is_whole(panel.get("i2c")) and panel["i2c"] in (0, 1), "panel.i2c",
            "must be 0 or 1 (the ESP32's I2C controllers), got %r" % (panel.get("i2c"),))
    if rtc is not None and rtc["i2c"] == panel["i2c"]:
        for key in ("sda_pin", "scl_pin"):
            _expect(panel.get(key) == rtc[key], "panel." + key, "must be rtc.%s (%d): the "
                    "display shares I2C controller %d with the DS3231" % (key, rtc[key],
                                                                          rtc["i2c"]))
    else:
        _output_pin(panel, "sda_pin", "panel.sda_pin", used)
        _output_pin(panel, "scl_pin", "panel.scl_pin", used)
    # The encoder's two phases: inputs of the pulse counter, with the chip's pull-ups where the
    # pin has them (hw.py); the input-only GPIOs rely on the encoder module's own resistors.
    for key in ("encoder_a_pin", "encoder_b_pin"):
        _gpio(panel.get(key), "panel." + key)
        _claim(panel[key], "panel." + key, used)
    _input(panel, "select", used, "panel.")
    _input(panel, "back", used, "panel.")
    _expect(isinstance(panel.setdefault("eyewear", False), bool), "panel.eyewear",
            "must be true (the panel asks the operator to confirm protective eyewear before "
            "arming) or false")


def _thermistor_range(data, therm):
    """The divider must put every fault and every limit where the ADC can tell them apart.
    Returns the Thermistor checked (`therm`, or one built here if None)."""
    th = data["thermistor"]
    max_uv = linear_range_uv(th["atten_db"])[1]
    _expect(th["divider"]["supply_v"] * 1e6 > max_uv * 1.05, "thermistor.divider.supply_v",
            "must be well above the ADC's linear range (%d mV at this attenuation), or an open "
            "or shorted sensor reads as a temperature" % (max_uv // 1000))
    if therm is None:
        heap.collect()  # the grid is kept: built where the checks' garbage was, low in the heap
        try:
            therm = Thermistor(th)
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            raise BoardError("thermistor: the %s model cannot be evaluated: %s"
                             % (th["model"], e))
    _expect(therm.monotonic(), "thermistor",
            "the %s model does not fall steadily with temperature over the ADC's range"
            % th["model"])
    if th["model"] == "table":
        coldest_mc, hottest_mc = therm.span_mc()
        coldest, hottest = coldest_mc / 1000, hottest_mc / 1000
        rows = th["table"]
        _expect(rows[0][0] <= coldest and rows[-1][0] >= hottest, "thermistor.table",
                "covers %g..%g C, but the divider's linear range spans %.1f..%.1f C"
                % (rows[0][0], rows[-1][0], coldest, hottest))
    thermal = data["thermal"]
    # The jump and rise limits must stand well clear of ADC noise (several mV on an ESP32).
    shutdown = thermal["shutdown_c"]
    per_c_uv = abs(therm.uv_at(shutdown) - therm.uv_at(shutdown + 1.0))
    for field, delta_c in (("thermal.jump_c", thermal["jump_c"]),
                           ("thermal.max_rise_c_per_s",
                            thermal["max_rise_c_per_s"] * thermal["rise_window_s"])):
        _expect(delta_c * per_c_uv >= 20000, field,
                "%.2f C is only %d mV at shutdown_c: too close to the ADC's noise (20 mV at least)"
                % (delta_c, delta_c * per_c_uv // 1000))
    for field, temp_c in (("thermal.shutdown_c", thermal["shutdown_c"]),
                          ("thermal.hysteresis_c",
                           thermal["shutdown_c"] - thermal["hysteresis_c"])):
        uv = therm.uv_at(temp_c)
        _expect(therm.min_uv < uv < therm.max_uv, field,
                "the divider puts %g C at %d mV, outside the ADC's linear range %d..%d mV"
                % (temp_c, uv // 1000, therm.min_uv // 1000, therm.max_uv // 1000))
    return therm


def _adc_input(section, name, used):
    """An analog input: an ADC1 pin of its own and a fixed attenuation."""
    adc_pin = section.get("adc_pin")
    _expect(adc_pin in _ADC1, name + ".adc_pin", "must be an ADC1 pin (GPIO 32-39), got %r"
            % (adc_pin,))
    _claim(adc_pin, name + ".adc_pin", used)
    _expect(section.get("atten_db") in _ATTENUATIONS_DB, name + ".atten_db",
            "must be one of 0, 2.5, 6, 11")


def _thermistor(th, used):
    _adc_input(th, "thermistor", used)
    _number(th, "samples", "thermistor.samples", 1, 15, 5)
    _expect(is_whole(th["samples"]) and th["samples"] % 2 == 1, "thermistor.samples",
            "must be an odd whole number (the median of the samples is used)")
    _section(th, "divider", "thermistor.")
    div = th["divider"]
    _number(div, "supply_v", "thermistor.divider.supply_v", 1.0, 3.6)
    _number(div, "fixed_ohm", "thermistor.divider.fixed_ohm", 100, 1e7)
    _expect(div.get("ntc") in ("top", "bottom"), "thermistor.divider.ntc",
            'must be "top" or "bottom"')
    model = th.get("model")
    _expect(model in _MODELS, "thermistor.model", "must be one of %s, got %r"
            % (", ".join(_MODELS), model))
    if model == "table":
        _curve(th, "table", 3, 200)
    elif model == "beta":
        _number(th, "r25_ohm", "thermistor.r25_ohm", 100, 1e7)
        _number(th, "beta_k", "thermistor.beta_k", 1000, 10000)
        pair = th.setdefault("beta_pair_c", [25, 85])
        _expect(isinstance(pair, list) and len(pair) == 2 and all(_is_number(t) for t in pair)
                and pair[0] < pair[1], "thermistor.beta_pair_c",
                "must be the two temperatures B is quoted for, like [25, 85]")
    elif "steinhart_hart" in th:
        coefficients = th["steinhart_hart"]
        _expect(isinstance(coefficients, list) and len(coefficients) == 3
                and all(_is_number(c) for c in coefficients) and coefficients[1] > 0,
                "thermistor.steinhart_hart", "must be the three coefficients [A, B, C]")
    else:
        _expect("points" in th, "thermistor.points",
                "give steinhart_hart [A, B, C] or three points [[temp_c, ohm], ...] to fit")
        _curve(th, "points", 3, 3)


def _power_monitor(pm, used, max_power_w):
    """The optional photodiode: its pin, and a calibration from microvolts to optical watts."""
    _expect(isinstance(pm, dict), "power_monitor", "must be an object")
    _adc_input(pm, "power_monitor", used)
    low_uv, high_uv = linear_range_uv(pm["atten_db"])
    points = pm.get("calibration")
    field = "power_monitor.calibration"
    _expect(isinstance(points, _ROWS) and len(points) >= 2, field,
            "must list at least two [read_uv, watts] points")
    for i, point in enumerate(points):
        where = "%s[%d]" % (field, i)
        _expect(isinstance(point, _ROWS) and len(point) == 2 and is_whole(point[0])
                and _is_number(point[1]) and point[1] >= 0, where, "must be [read_uv, watts]")
        _expect(low_uv <= point[0] <= high_uv, where,
                "%d uV is outside the ADC's linear range %d..%d uV" % (point[0], low_uv, high_uv))
        if i:
            _expect(point[0] >= points[i - 1][0] + 1000 and point[1] > points[i - 1][1], where,
                    "read_uv (by 1 mV at least, the ADC's step) and watts must both rise")
    _expect(points[-1][1] >= max_power_w, field,
            "measures only up to %g W, below diode.max_power_w" % points[-1][1])
    _number(pm, "tolerance_pct", "power_monitor.tolerance_pct", 1, 50, 10)
    _number(pm, "floor_w", "power_monitor.floor_w", 0, max_power_w / 10, 0.1)
    _number(pm, "window_ms", "power_monitor.window_ms", 50, 2000, 250)
    _expect(is_whole(pm["window_ms"]), "power_monitor.window_ms",
            "must be a whole number of ms")


def _curve(th, key, fewest, most):
    """[[temp_c, ohm], ...]: temperatures rising, resistances falling (an NTC)."""
    rows = th.get(key)
    field = "thermistor." + key
    _expect(isinstance(rows, _ROWS) and fewest <= len(rows) <= most, field,
            "must list %d to %d [temp_c, ohm] rows" % (fewest, most))
    for i, row in enumerate(rows):
        where = "%s[%d]" % (field, i)
        _expect(isinstance(row, _ROWS) and len(row) == 2 and _is_number(row[0])
                and _is_number(row[1]) and row[1] > 0, where, "must be [temp_c, ohm > 0]")
        if i:
            _expect(row[0] > rows[i - 1][0] and row[1] < rows[i - 1][1], where,
                    "temperatures must rise and resistances fall from row to row")


def _thermal(thermal):
    def field(key, low, high, default=None):
        _number(thermal, key, "thermal." + key, low, high, default)
        return thermal[key]

    warning = field("warning_c", 20, 100)
    derate = field("derate_start_c", 20, 100)
    shutdown = field("shutdown_c", 20, 100)
    rating = field("rating_c", 20, 120)
    _expect(warning < derate < shutdown < rating, "thermal",
            "needs warning_c < derate_start_c < shutdown_c < rating_c (the diode's rating)")
    _expect(shutdown - derate >= 1.0, "thermal.derate_start_c",
            "must be at least 1 C below shutdown_c: derating needs room to act")
    hysteresis = field("hysteresis_c", 0.5, 20, 5.0)
    ambient = field("max_ambient_c", 15, 45)
    _expect(shutdown - hysteresis > ambient, "thermal.hysteresis_c",
            "shutdown_c - hysteresis_c must be above max_ambient_c, or a fault could never be "
            "reset in the warmest room the device is specified for")
    field("jump_c", 0.2, 20, 2.0)
    field("stuck_s", 1, 60, 5)
    field("max_rise_c_per_s", 0.01, 10)
    for key in ("rise_window_s", "runaway_window_s"):
        _expect(is_whole(field(key, 2, 120)), "thermal." + key,
                "must be a whole number of seconds")
    field("heatsink_capacity_j_per_c", 1, 10000)
    field("cooling_c_per_w", 0.2, 10)  # with the heat bound below, keeps the tick's integers small
    field("runaway_margin_c", 0.05, 10)


def _diode(diode):
    _number(diode, "rating_w", "diode.rating_w", 0.001, 100)  # the datasheet's maximum
    _number(diode, "max_power_w", "diode.max_power_w", 0.001, 60)
    _expect(diode["max_power_w"] <= diode["rating_w"], "diode.max_power_w",
            "must not exceed diode.rating_w (%g W)" % diode["rating_w"])
    _number(diode, "electrical_w_at_full_duty", "diode.electrical_w_at_full_duty", 0.01, 150)
    cal = diode.get("calibration")
    field = "diode.calibration"
    _expect(isinstance(cal, _ROWS) and len(cal) >= 2, field,
            "must list at least two [duty_u16, watts] points")
    prev = None
    for i, point in enumerate(cal):
        where = "%s[%d]" % (field, i)
        _expect(isinstance(point, _ROWS) and len(point) == 2, where, "must be [duty_u16, watts]")
        duty, watts = point
        _expect(is_whole(duty) and 0 <= duty <= 65535,
                where, "duty must be a whole number in 0..65535")
        _expect(_is_number(watts) and 0 <= watts <= diode["rating_w"], where,
                "watts must be a number within 0..diode.rating_w (%g W)" % diode["rating_w"])
        if prev is None:
            _expect(duty == 0 and watts == 0, where, "must start at [0, 0]: no duty, no light")
        else:
            _expect(duty > prev[0], where, "duty must increase from point to point")
            _expect(watts >= prev[1], where, "watts must not decrease as duty increases")
        prev = point
    _expect(prev[1] > 0, field, "never reaches any optical power")
    _expect(prev[1] >= diode["max_power_w"], field,
            "reaches only %.3f W, below diode.max_power_w" % prev[1])
    _expect(diode["electrical_w_at_full_duty"] > prev[1], "diode.electrical_w_at_full_duty",
            "must exceed the light at full duty (%.3f W): no diode is 100 %% efficient" % prev[1])


def _input(inputs, name, used, prefix="inputs."):
    where = prefix + name
    spec = inputs.get(name)
    _expect(isinstance(spec, dict), where, 'missing: {"pin": N, "active": "low"|"high", '
            '"pull": "up"|"down"|"none"}')
    pin = spec.get("pin")
    _gpio(pin, where + ".pin")
    _claim(pin, where + ".pin", used)
    _expect(spec.get("active") in ("low", "high"), where + ".active", 'must be "low" or "high"')
    # pull: the chip's own resistor, which hw.py switches on; external_pull: a resistor on the
    # board, declared so that the open-wire check below can count on it.
    pull = spec.setdefault("pull", "none")
    _expect(pull in _PULLS, where + ".pull", 'must be "up", "down" or "none"')
    external = spec.get("external_pull", "none")  # not filled in: 8 more entries per board copy
    _expect(external in _PULLS, where + ".external_pull",
            'must be "up", "down" or "none": the resistor the board has on this line')
    _expect(not (pin in _INPUT_ONLY and pull != "none"), where + ".pull",
            'GPIO %d has no internal pull resistor: fit one on the board and declare it '
            '("pull": "none", "external_pull": "up" or "down")' % pin)
    _expect(pull == "none" or external in ("none", pull), where + ".external_pull",
            "a pull-%s against the internal pull-%s: an open wire would read neither level for "
            "sure" % (external, pull))
    _open_wire(name, where, spec["active"], pull if pull != "none" else external)


def _open_wire(name, where, active, pull):
    """Prove from the active level and the pull that an open wire reads the safe value."""
    what, true_means, false_means = _OPEN_WIRE[name].split("/")
    safe = name == "estop"  # pressed; every other input's safe value is False
    _expect(pull != "none", where + ".pull",
            "none, and no external_pull: a broken wire leaves the pin floating, reading either "
            "level, and %s must read %s when its wire breaks; use a pull (internal or declared "
            "external)" % (what, true_means if safe else false_means))
    level = "high" if pull == "up" else "low"  # where a pin left open floats to
    fix = ("high", "low") if safe else ("low", "high")  # the active level for a pull-up, -down
    _expect((level == active) == safe, where + ".active",
            "with a pull-%s, an open wire reads %s = %s; %s must read %s when its wire breaks: "
            "use active %s with a pull-up, or active %s with a pull-down"
            % (pull, level, true_means if level == active else false_means, what,
               true_means if safe else false_means, fix[0], fix[1]))


def _output_pin(section, key, where, used):
    pin = section.get(key)
    _gpio(pin, where)
    _expect(pin not in _INPUT_ONLY, where, "GPIO %d is input-only" % pin)
    _expect(pin not in _STRAPPING, where, "GPIO %d is a strapping pin: it toggles at reset" % pin)
    _claim(pin, where, used)


def _gpio(pin, where):
    _expect(is_whole(pin) and pin in _GPIOS, where,
            "not an ESP32 GPIO usable here: %r" % (pin,))
    _expect(pin not in _UART0, where, "GPIO %d is the USB serial port (UART0)" % pin)


def _claim(pin, where, used):
    _expect(pin not in used, where, "GPIO %d is already used by %s" % (pin, used.get(pin)))
    used[pin] = where


def _known_fields(obj, where, kind):
    """Refuse a field _FIELDS does not list for `kind`, in `obj` and every object within it."""
    fields = _FIELDS[kind]
    for key in obj:
        path = where + "." + key if where else key
        if key not in fields.split():  # the message only when needed: most boards have no typo
            raise BoardError("%s: unknown field (known: %s)" % (path, fields.replace(" ", ", ")))
        inner = kind + "." + key if kind else key
        if inner not in _FIELDS:
            inner = kind + ".*"
        if isinstance(obj[key], dict) and inner in _FIELDS:
            _known_fields(obj[key], path, inner)


def _section(data, key, prefix=""):
    _expect(isinstance(data.get(key), dict), prefix + key, "missing or not an object")


def _number(data, key, where, low, high, default=None):
    if default is not None:
        data.setdefault(key, default)
    value = data.get(key)
    _expect(_is_number(value), where, "must be a number, got %r" % (value,))
    _expect(low <= value <= high, where, "must be within %g..%g, got %g" % (low, high, value))


def _is_number(value):
    # Not NaN either (NaN and infinity fail a range check, where there is one: every comparison
    # with NaN is false; the thermistor's coefficients have none).
    return is_number(value) and value == value


def _expect(ok, where, problem):
    if not ok:
        raise BoardError("%s: %s" % (where, problem))
