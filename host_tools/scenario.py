"""`laserctl scenario FILE`: run the firmware on the virtual device in virtual time and report
what happened.

A scenario file is JSON:

    {"board": "sim",
     "protocol": {"power_w": 10.0, "dose_j_cm2": 8.0, "area_cm2": 100.0},
     "ambient_c": 25.0, "until_s": 300,
     "events": [{"at_s": 0.5, "input": "key", "value": true}, ...,
                {"at_s": 60, "fault": "fan_failure"}, {"at_s": 90, "ambient_c": 35.0}],
     "expect": {"final_state": "COMPLETE", "delivered_j": {"approx": 800, "rel": 0.001}}}

An event that recurs is written once, with "every_s" (its period) and "until_s" (the last time it
may recur, inclusive): {"at_s": 10, "input": "footswitch", "value": false, "every_s": 4,
"until_s": 70} and {"at_s": 10.3, "input": "footswitch", "value": true, "every_s": 4,
"until_s": 70.3} lift the pedal for 0.3 s every 4 s for a minute. Any event may recur (a host
polling "status", an arm press every 3 s, repeated power cuts). The runner writes the repetitions
out before the device starts (expand_events), so the device, its trace and the report see exactly
the events a longer file would have listed; at the same instant they keep the file's order.

"protocol" may instead name a preset of the device's library (firmware/protocols.json), with an
optional Fitzpatrick "skin_type" 1..6: {"protocol": "low-back-chronic", "skin_type": 5}. The
preset is resolved on the host with the firmware's own lib/protocols.py before treatment.json is
written, so the device runs exactly the spec the report names.

On a board with an operator panel, the panel's inputs: {"input": "encoder", "value": N} turns
the knob N detents at once (clockwise positive, a whole number, 1 <= |N| <= 100), "select" and
"back" are buttons (true: pressed). The report's "display" lists each screen a person saw, as
text read back from its pixels (host_tools/display.py): {"at_s", "text": [8 lines]}.

This module holds the format (load, validate, expand_events, treatment_spec) and the run (`run`:
the device image, the world's configuration, the interpreter in virtual time). The report
(host_tools/report.py) combines what the firmware said (its JSON lines on the serial port: states,
faults, its own dose count, its measured temperature) with what the plant did (optical power,
true temperature, the emitted energy integrated from the optical power), and checks the
expectations.

Exit status of `laserctl scenario`: 0 it ran and its expectations held; 1 one was missed; 2 an
invalid scenario file (the message names the field).
"""

import ast
import json
import sys
import tempfile
from pathlib import Path

from host_tools import device_lines, display, paths, vdevice
from host_tools import report as report_mod
from host_tools.report import is_number

PANEL_INPUTS = ("encoder", "select", "back")  # where the board has a panel
INPUTS = ("key", "interlock", "estop", "footswitch", "footswitch_no", "footswitch_nc", "arm",
          "reset", "ack") + PANEL_INPUTS
MAX_ENCODER_STEPS = 100  # detents in one encoder event, either way


def _simulator_faults():
    """The FAULTS tuple of host_tools/vdevice/mpy/sim_faults.py (MicroPython code, not importable
    here), read from its source: the simulator's list is the one list."""
    tree = ast.parse((paths.SIM_MPY / "sim_faults.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "FAULTS":
            return ast.literal_eval(node.value)
    raise RuntimeError("sim_faults.py defines no FAULTS")


# Faults the virtual device can inject (see sim_faults.inject).
FAULTS = _simulator_faults() + ("diode_degraded",)
AMBIENT_RANGE_C = (-20, 60)
_EVENT_FORMS = ('{"at_s": S, "input": NAME, "value": V}, {"at_s": S, "fault": NAME}, '
                '{"at_s": S, "ambient_c": C} or {"at_s": S, "serial": LINE}, each optionally '
                'recurring with "every_s": P and "until_s": U')
_RECUR = ("every_s", "until_s")
MIN_EVERY_S = 0.001  # a recurring event's shortest period: one millisecond
MAX_EVENTS = 100000  # the events of a scenario, repetitions written out
MAX_SERIAL_CHARS = 4096  # a scenario may send an over-long line on purpose (the limit is 512)
_FIELDS = ("description", "board", "protocol", "skin_type", "ambient_c", "until_s", "events",
           "initial", "expect", "clock_start_ms")
_TICKS_PERIOD = 1 << 30


class ScenarioError(ValueError):
    """The scenario file is invalid; the message names the field."""


def load(path):
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ScenarioError("%s: cannot read it (%s)" % (path, e.strerror)) from e
    except ValueError as e:
        raise ScenarioError("%s: not valid JSON (%s)" % (path, e)) from e
    return validate(data)


def validate(data):
    """Check a scenario and return (scenario, board). Raises ScenarioError naming the field."""
    if not isinstance(data, dict):
        raise ScenarioError("scenario: must be a JSON object")
    for key in data:
        if key not in _FIELDS:
            raise ScenarioError("%s: unknown field (known: %s)" % (key, ", ".join(_FIELDS)))
    board_name = data.get("board", "sim")
    if not isinstance(board_name, str):
        raise ScenarioError("board: must be a board name such as \"sim\"")
    try:
        _, board = vdevice.load_board(board_name)
        vdevice.sim_config(board)
        spec = treatment_spec(data)
        if spec is not None:  # none: the device boots with nothing selected (a host selects)
            vdevice.check_treatment(spec, board)
    except ValueError as e:
        raise ScenarioError("%s" % e) from e
    until_s = _number(data, "until_s", 0.001, 86400)
    _number(data, "ambient_c", AMBIENT_RANGE_C[0], AMBIENT_RANGE_C[1], 25.0)
    if "clock_start_ms" in data:
        start = data["clock_start_ms"]
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < _TICKS_PERIOD:
            raise ScenarioError("clock_start_ms: must be a whole number in 0..2**30-1")
    initial = data.get("initial", {})
    if not isinstance(initial, dict):
        raise ScenarioError("initial: must be an object of input: true/false")
    for name, value in initial.items():
        if name == "encoder":
            raise ScenarioError("initial.encoder: the encoder has no position to start from: "
                                "turn it with an event")
        _input_value("initial.%s" % name, name, value, board)
    events = data.get("events", [])
    if not isinstance(events, list):
        raise ScenarioError("events: must be a list")
    last = 0.0
    count = 0
    for i, event in enumerate(events):
        where = "events[%d]" % i
        if not isinstance(event, dict) or "at_s" not in event or \
                set(event) - {"at_s", *_RECUR} not in ({"input", "value"}, {"fault"},
                                                       {"fault", "factor"}, {"ambient_c"},
                                                       {"serial"}):
            raise ScenarioError("%s: must be exactly one of %s" % (where, _EVENT_FORMS))
        at_s = event["at_s"]
        if not is_number(at_s) or not 0 <= at_s <= until_s:
            raise ScenarioError("%s.at_s: must be a time within 0..until_s (%g)" % (where, until_s))
        if at_s < last:
            raise ScenarioError("%s.at_s: events must be in time order" % where)
        last = at_s
        count += _check_recurrence(where, event, until_s)
        if count > MAX_EVENTS:
            raise ScenarioError("events: with their repetitions they make more than %d events"
                                % MAX_EVENTS)
        if "fault" in event:
            if not isinstance(event["fault"], str) or event["fault"] not in FAULTS:
                raise ScenarioError("%s.fault: unknown fault %r (known: %s)"
                                    % (where, event["fault"], ", ".join(FAULTS)))
            # diode_degraded scales the diode's light by "factor" (0.7: aged; 2.3: as measured in
            # a commercial device giving 230 % of its setting); no other fault takes one.
            factor = event.get("factor")
            if (event["fault"] == "diode_degraded") != (factor is not None) or \
                    (factor is not None and not (is_number(factor) and 0 < factor <= 3)):
                raise ScenarioError("%s.factor: diode_degraded needs a factor within 0..3 (and "
                                    "no other fault takes one)" % where)
        elif "serial" in event:
            line = event["serial"]
            if not isinstance(line, str) or "\n" in line or len(line) > MAX_SERIAL_CHARS:
                raise ScenarioError("%s.serial: must be one line of text (what the host sends, "
                                    "without its newline), at most %d characters"
                                    % (where, MAX_SERIAL_CHARS))
        elif "ambient_c" in event:
            low, high = AMBIENT_RANGE_C
            if not is_number(event["ambient_c"]) or not low <= event["ambient_c"] <= high:
                raise ScenarioError("%s.ambient_c: must be a number within %g..%g, got %r"
                                    % (where, low, high, event["ambient_c"]))
        else:
            _input_value(where, event["input"], event["value"], board)
    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        raise ScenarioError("expect: must be an object of report field: expectation")
    return data, board


def _check_recurrence(where, event, until_s):
    """How many times the event happens (1 unless it recurs); ScenarioError naming the field."""
    given = [key for key in _RECUR if key in event]
    if not given:
        return 1
    if len(given) == 1:
        raise ScenarioError("%s: a recurring event needs both every_s and until_s" % where)
    every_s, last_s = event["every_s"], event["until_s"]
    if not is_number(every_s) or not MIN_EVERY_S <= every_s <= until_s:
        raise ScenarioError("%s.every_s: the period must be a number within %g..until_s (%g), "
                            "got %r" % (where, MIN_EVERY_S, until_s, every_s))
    if not is_number(last_s) or not event["at_s"] <= last_s <= until_s:
        raise ScenarioError("%s.until_s: the last time it may recur must be within at_s (%g).."
                            "until_s (%g), got %r" % (where, event["at_s"], until_s, last_s))
    return len(_times_us(event))


def _times_us(event):
    """The microseconds at which an event happens: at_s, then every every_s up to until_s. In
    whole microseconds, the world's resolution, so that the 100th repetition does not drift."""
    at_us = round(event["at_s"] * 1e6)
    if "every_s" not in event:
        return [at_us]
    every_us = round(event["every_s"] * 1e6)
    return list(range(at_us, round(event["until_s"] * 1e6) + 1, every_us))


def expand_events(events):
    """A validated scenario's events with every recurring one written out: the list the device
    runs, in time order, events at the same instant in the file's order."""
    timed = []
    for i, event in enumerate(events):
        once = {key: value for key, value in event.items() if key not in _RECUR}
        for k, t_us in enumerate(_times_us(event)):
            timed.append((t_us, i, k, dict(once, at_s=t_us / 1e6)))
    timed.sort(key=lambda row: row[:3])
    return [row[3] for row in timed]


def treatment_spec(data):
    """The treatment spec the scenario prescribes: its "protocol" object as written, or the named
    preset of firmware/protocols.json; with "skin_type" 1..6 the preset's (or the object's) power
    is lowered for that Fitzpatrick type (same dose, longer time). ScenarioError naming the
    preset or the skin type when there is no such thing."""
    protocol = data.get("protocol")
    skin_type = data.get("skin_type")
    if (protocol is None or isinstance(protocol, dict)) and skin_type is None:
        return protocol  # checked as a treatment by vdevice.check_treatment
    protocols = paths.firmware_module("protocols")

    library = None
    if isinstance(protocol, str):
        try:
            library = protocols.load(str(paths.FIRMWARE / "protocols.json"))
        except ValueError as e:
            raise ScenarioError("protocol: the preset library is invalid: %s" % e) from e
    elif not isinstance(protocol, dict):
        raise ScenarioError("protocol: a preset name or an object (power_w, dose_j_cm2, "
                            "area_cm2, ...), got %r" % (protocol,))
    try:
        return protocols.spec_for(library, protocol, skin_type)
    except ValueError as e:
        message = str(e)
        if isinstance(protocol, str) and message.startswith("protocol %r: unknown" % protocol):
            message = "protocol: unknown preset %r (known: %s)" % (
                protocol, ", ".join(protocols.names(library)))
        raise ScenarioError(message) from e


def _input_value(where, name, value, board):
    if not isinstance(name, str) or name not in INPUTS:
        raise ScenarioError("%s.input: unknown input %r (known: %s)"
                            % (where, name, ", ".join(INPUTS)))
    if name in PANEL_INPUTS and "panel" not in board:
        raise ScenarioError("%s.input: %s is on the operator panel, and board %r has none"
                            % (where, name, board.get("name")))
    if name == "encoder":
        if isinstance(value, bool) or not isinstance(value, int) or value == 0 or \
                abs(value) > MAX_ENCODER_STEPS:
            raise ScenarioError("%s.value: the encoder's detents turned, a whole number within "
                                "-%d..%d other than 0 (clockwise positive), got %r"
                                % (where, MAX_ENCODER_STEPS, MAX_ENCODER_STEPS, value))
    elif not isinstance(value, bool):
        raise ScenarioError("%s.value: must be true or false" % where)


def _number(data, key, low, high, default=None):
    if key not in data and default is not None:
        return default
    value = data.get(key)
    if not is_number(value) or not low <= value <= high:
        raise ScenarioError("%s: must be a number within %g..%g, got %r" % (key, low, high, value))
    return value


# -- running -------------------------------------------------------------------------------------


def run(scenario, board, heap=vdevice.DEFAULT_HEAP, chip=False):
    """Run a validated scenario on the virtual device; return the report dict. `chip`: on the
    chip interpreter (32-bit, single floats), the firmware frozen into it."""
    with tempfile.TemporaryDirectory(prefix="laser-scenario-") as tmp:
        tmp = Path(tmp)
        root = tmp / "device"
        vdevice.make_image(root, scenario.get("board", "sim"), treatment_spec(scenario),
                           frozen=chip)
        trace_path = tmp / "trace.json"
        config = vdevice.sim_config(
            board, until_s=scenario["until_s"], until_us=round(scenario["until_s"] * 1e6),
            # Each time also in whole microseconds: the chip interpreter reads a JSON number
            # with a fraction as a single float, good to the microsecond only up to 16 s.
            events=[dict(e, at_us=round(e["at_s"] * 1e6))
                    for e in expand_events(scenario.get("events", []))],
            initial=scenario.get("initial", {}), ambient_c=scenario.get("ambient_c", 25.0),
            clock_start_ms=scenario.get("clock_start_ms", 0), trace_path=str(trace_path))
        config_path = tmp / "vdev.json"

        def serial(fd):
            # The serial port: the device reads the pipe as its stdin; the world writes the
            # scenario's lines into it at their virtual times (simworld.World.set_input).
            config["serial_fd"] = fd
            config_path.write_text(json.dumps(config))

        proc = vdevice.run(vdevice.command(root, config_path, heap=heap, chip=chip),
                           serial=serial)
        if proc.returncode != 0 or not trace_path.exists():
            raise RuntimeError("the virtual device failed (exit %d):\n%s%s"
                               % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        world = json.loads(_trace_text(trace_path.read_bytes()))
        records = device_journal(root)
    return report_mod.build_report(scenario, proc.stdout, world, records)


def device_journal(root):
    """What the device's journal holds at the end (its files under `root`), verified by the
    firmware's own journal.verify: {"records": [bodies], "problems": ["line N: ..."]}."""
    journal = paths.firmware_module("journal")

    lines = []
    for name in ("journal.old", "journal.log"):
        path = root / name
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()
    records, problems = journal.verify(lines, journal.GENESIS)
    return {"records": records, "problems": ["line %d: %s" % (i + 1, m) for i, m in problems]}


def _trace_text(data):
    """The world's trace file as text. MicroPython's json writes a string's characters as their
    UTF-8 bytes, a lone surrogate (a scenario's "\\ud800") as its three-byte form: read back,
    the serial lines in the trace are exactly what the scenario sent."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return device_lines.text(data)



# -- the command ---------------------------------------------------------------------------------


def main(args):
    """`laserctl scenario FILE [--report OUT.json] [--frames DIR] [--chip]`."""
    try:
        scenario, board = load(args.file)
    except ScenarioError as e:
        print("laserctl scenario: invalid scenario %s: %s" % (args.file, e), file=sys.stderr)
        return 2
    if args.frames is not None:
        if "panel" not in board:
            print("laserctl scenario: --frames: board %r has no operator panel"
                  % board["name"], file=sys.stderr)
            return 2
        if Path(args.frames).exists() and not Path(args.frames).is_dir():
            print("laserctl scenario: --frames: %s exists and is not a folder" % args.frames,
                  file=sys.stderr)
            return 2
    try:
        report = run(scenario, board, chip=args.chip)
    except FileNotFoundError as e:  # no chip interpreter built
        print("laserctl scenario: %s" % e, file=sys.stderr)
        return 2
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
    if args.frames is not None:
        try:
            written = display.write_frames(display.frames(report["trace"]["display"]),
                                           args.frames)
        except (OSError, ValueError) as e:
            print("laserctl scenario: --frames: %s" % e, file=sys.stderr)
            return 2
        print("%d screens written to %s" % (len(written), args.frames), file=sys.stderr)
    print(report_mod.summary(report))
    return report_mod.print_verdict(report)
