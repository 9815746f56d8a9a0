"""`laserctl thermistor`: what the firmware will make of a board's thermistor and divider.

With --resistance, the temperature the firmware computes for that resistance (through the divider,
the ADC's millivolt reading and the lookup the tick uses). Without it, a table every 5 C of the
resistance, the divider voltage, the expected read_uv, the temperature read back, and whether the
ADC can read it (its linear range) — the check to make before a new board is built.
"""

import sys

from host_tools import paths, vdevice

_STATUS = {0: "ok", 1: "OPEN", 2: "SHORT", 3: "outside the ADC's linear range"}


def _sensor(board):
    thermistor = paths.firmware_module("thermistor")

    return thermistor, thermistor.Thermistor(board["thermistor"])


def read_back(thermistor, sensor, ohm):
    """(divider uv, read_uv as the chip returns it, status, firmware temp C or None)."""
    if sensor.ntc_at_bottom:
        uv = sensor.supply_uv * ohm / (sensor.fixed_ohm + ohm)
    else:
        uv = sensor.supply_uv * sensor.fixed_ohm / (sensor.fixed_ohm + ohm)
    # What read_uv() returns on the chip: mV steps, 0 below about 100 mV, clipped at full scale.
    read_uv = min(int(round(uv / 1000.0)) * 1000, sensor.full_scale_uv) if uv >= 100000 else 0
    status = sensor.check(read_uv)
    temp_c = sensor.temp_mc(read_uv) / 1000 if status == thermistor.OK else None
    return uv, read_uv, status, temp_c


def _beyond(sensor, temp_c):
    """A warning when a table model extrapolates past the manufacturer's rows."""
    low, high = getattr(sensor.model, "low_c", None), getattr(sensor.model, "high_c", None)
    if low is not None and not low <= temp_c <= high:
        return ", extrapolated beyond the table's %g..%g C" % (low, high)
    return ""


def describe(board, sensor):
    th, thermal = board["thermistor"], board["thermal"]
    div = th["divider"]
    return ("board %s: %s model, NTC at the %s of a %g ohm divider from %g V, ADC %g dB "
            "(linear %d..%d mV), %d samples per reading\nthresholds: warning %g C, derate from %g "
            "C, shutdown %g C (reset below %g C), diode rating %g C"
            % (board["name"], th["model"], div["ntc"], div["fixed_ohm"], div["supply_v"],
               th["atten_db"], sensor.min_uv // 1000, sensor.max_uv // 1000, th["samples"],
               thermal["warning_c"], thermal["derate_start_c"], thermal["shutdown_c"],
               thermal["shutdown_c"] - thermal["hysteresis_c"], thermal["rating_c"]))


def main(args):
    try:
        _, board = vdevice.load_board(args.board)
    except ValueError as e:
        print("laserctl thermistor: %s" % e, file=sys.stderr)
        return 2
    thermistor, sensor = _sensor(board)
    print(describe(board, sensor))
    if args.resistance is not None:
        if not args.resistance > 0:
            print("laserctl thermistor: --resistance must be > 0 ohm", file=sys.stderr)
            return 2
        uv, read_uv, status, temp_c = read_back(thermistor, sensor, args.resistance)
        model_c = sensor.model.temp_c(args.resistance)
        print("%g ohm -> divider %.4f V -> read_uv %d -> %s (the model alone: %.3f C%s)"
              % (args.resistance, uv / 1e6, read_uv,
                 "%.3f C" % temp_c if temp_c is not None else _STATUS[status], model_c,
                 _beyond(sensor, model_c)))
        return 0
    print("%7s %12s %10s %10s %10s  %s" % ("temp_c", "ohm", "divider_v", "read_uv",
                                             "read_c", "note"))
    for temp_c in range(-20, 135, 5):
        ohm = sensor.model.ohm(temp_c)
        uv, read_uv, status, back_c = read_back(thermistor, sensor, ohm)
        note = _STATUS[status] if status != thermistor.OK else ""
        print("%7d %12.1f %10.4f %10d %10s  %s" % (temp_c, ohm, uv / 1e6, read_uv,
                                                   "%.2f" % back_c if back_c is not None else "-",
                                                   note))
    return 0
