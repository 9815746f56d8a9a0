"""Shared: the `laserctl` command line, its options only. Each subcommand is one module named after
it (host_tools/vdevice/ for `vdevice`), holding what it does and its `main(args)`; this module
imports it when the subcommand runs.
"""

import argparse
import importlib
import json
import sys

DESCRIPTION = "laserctl: the host-side command line for the therapy-laser firmware."
DEFAULT_PROTOCOL = '{"power_w": 5.0, "dose_j_cm2": 4.0, "area_cm2": 25.0}'


def _protocol(text):
    """--protocol takes inline JSON, a path to a JSON file, or a preset's name."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    from host_tools import paths

    protocols = paths.firmware_module("protocols")
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


def _command(module):
    """The handler of a subcommand: `main(args)` of its module, imported only when it runs (plot
    and calibrate bring matplotlib, which takes a while)."""
    def run(args):
        return importlib.import_module("host_tools." + module).main(args)

    run.module = module
    return run


def build_parser():
    """The command line: one subparser per subcommand, its handler `func` (its `module`)."""
    parser = argparse.ArgumentParser(prog="laserctl", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the virtual device with an operator console (make run)")
    p.add_argument("--board", default="sim", help="board name or file (default: sim)")
    p.add_argument("--protocol", type=_protocol, default=DEFAULT_PROTOCOL,
                   help="treatment as JSON, a JSON file or a preset's name (default: %s)"
                   % DEFAULT_PROTOCOL)
    p.add_argument("--ambient", type=float, default=25.0, help="ambient temperature, C")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="virtual seconds per wall-clock second (default: 1; at most 100)")
    p.set_defaults(func=_command('run'))

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
    p.set_defaults(func=_command('vdevice.pty'))

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
    p.set_defaults(func=_command('scenario'))

    p = sub.add_parser("report", help="a saved scenario report: its summary, its expectations "
                       "checked again (those of a scenario file, without running it)")
    p.add_argument("report", metavar="REPORT.json", help="laserctl scenario --report's file")
    p.add_argument("--expect", metavar="SCENARIO.json",
                   help="check this scenario file's \"expect\" block (or a file holding only "
                   "the block) against the report (default: the verdict saved in it)")
    p.set_defaults(func=_command("report"))

    p = sub.add_parser("bench", help="measure the control tick and the heap on the chip "
                                     "interpreter and the 64-bit unix port")
    p.add_argument("--out", metavar="FILE.json", help="also write the results as JSON")
    p.add_argument("--ticks", type=int, default=2000, help="ticks to time (default: 2000)")
    p.add_argument("--heap-step", type=int, default=256, metavar="BYTES",
                   help="resolution of the chip block's smallest-heap search (default: 256)")
    p.set_defaults(func=_command('bench'))

    p = sub.add_parser("faults", help="inject every fault of docs/hazards.md during emission "
                       "on the virtual device; print each one's reaction")
    p.add_argument("--out", metavar="FILE.json", help="also write the rows as JSON")
    p.set_defaults(func=_command('faults'))

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
    p.set_defaults(func=_command('flash'))

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
    p.set_defaults(func=_command('deploy'))

    p = sub.add_parser("thermistor", help="what the firmware reads from a board's thermistor")
    p.add_argument("--board", required=True, help="board name (boards/NAME.json) or a file")
    p.add_argument("--resistance", type=float, metavar="OHMS",
                   help="print the temperature the firmware computes for this resistance")
    p.set_defaults(func=_command('thermistor'))

    p = sub.add_parser("journal", help="download the device's journal over the serial port, "
                       "verify its hash chain, write CSV or JSON")
    p.add_argument("--port", required=True, help="the serial port (a board, or laserctl vdevice)")
    p.add_argument("--out", required=True, metavar="FILE.csv|FILE.json")
    p.add_argument("--pin", help="the service PIN (default: $LASERCTL_PIN, else asked for)")
    p.set_defaults(func=_command('journal'))

    p = sub.add_parser("console", help="an interactive console over the serial protocol: "
                       "status, presets, arming, service session, journal")
    p.add_argument("--port", required=True, help="the serial port (a board, or laserctl vdevice)")
    p.add_argument("--pin", help="the service PIN (default: $LASERCTL_PIN, else asked for)")
    p.add_argument("--log", metavar="FILE.jsonl",
                   help="append every JSON line the device sends (laserctl plot draws it)")
    p.set_defaults(func=_command('console'))

    p = sub.add_parser("plot", help="draw a session: a scenario report or a device's log "
                       "(power, temperature, dose against target, states, faults) as a PNG")
    p.add_argument("report", help="REPORT.json (laserctl scenario --report) or FILE.jsonl")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--title", help="the figure's title (default: the report's description)")
    p.add_argument("--board", help="the board whose thermal limits to draw, a name "
                   "(boards/NAME.json) or a file (default: the one the input names)")
    p.set_defaults(func=_command('plot'))

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
    p.set_defaults(func=_command('calibrate'))

    p = sub.add_parser("board", help="board files")
    board_sub = p.add_subparsers(dest="board_command", required=True)
    c = board_sub.add_parser("check", help="validate board files with the firmware's checks")
    c.add_argument("boards", nargs="+", help="board names (boards/NAME.json) or paths")
    c.set_defaults(func=_command('board'))

    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
