"""Scenarios: run the firmware on the virtual device in virtual time and report what happened.

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

The report combines what the firmware said (its JSON lines on the serial port: states, faults,
its own dose count, its measured temperature) with what the plant did (optical power, true
temperature, the emitted energy integrated from the optical power).
"""

import ast
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

from host_tools import device_lines, display, paths, vdevice

PANEL_INPUTS = ("encoder", "select", "back")  # where the board has a panel
INPUTS = ("key", "interlock", "estop", "footswitch", "footswitch_no", "footswitch_nc", "arm",
          "reset", "ack") + PANEL_INPUTS
MAX_ENCODER_STEPS = 100  # detents in one encoder event, either way
# Inputs whose change withdraws permission to emit, and the value that withdraws it.
WITHDRAWING = {"footswitch": False, "key": False, "interlock": False, "estop": True,
               "footswitch_no": False, "footswitch_nc": True}


def _simulator_faults():
    """The FAULTS tuple of host_tools/vdevice/mpy/simworld.py (MicroPython code, not importable
    here), read from its source: the simulator's list is the one list."""
    tree = ast.parse((paths.SIM_MPY / "simworld.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "FAULTS":
            return ast.literal_eval(node.value)
    raise RuntimeError("simworld.py defines no FAULTS")


# Faults the virtual device can inject (see simworld.World.inject_fault), and those the firmware
# must answer by stopping emission at once (their reaction time is reported like the inputs').
FAULTS = _simulator_faults() + ("diode_degraded",)
STOPPING_FAULTS = ("thermistor_open", "thermistor_short")
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
        if not _is_number(at_s) or not 0 <= at_s <= until_s:
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
                    (factor is not None and not (_is_number(factor) and 0 < factor <= 3)):
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
            if not _is_number(event["ambient_c"]) or not low <= event["ambient_c"] <= high:
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
    if not _is_number(every_s) or not MIN_EVERY_S <= every_s <= until_s:
        raise ScenarioError("%s.every_s: the period must be a number within %g..until_s (%g), "
                            "got %r" % (where, MIN_EVERY_S, until_s, every_s))
    if not _is_number(last_s) or not event["at_s"] <= last_s <= until_s:
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
    paths.firmware_import_path()
    import protocols

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
    if not _is_number(value) or not low <= value <= high:
        raise ScenarioError("%s: must be a number within %g..%g, got %r" % (key, low, high, value))
    return value


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
        config_path.write_text(json.dumps(config))
        argv, env, cwd = vdevice.command(root, config_path, heap=heap, chip=chip)
        # The serial port: the device reads the pipe as its stdin; the world writes the
        # scenario's lines into it at their virtual times (simworld.World.set_input).
        serial_in, serial_out = os.pipe()
        config["serial_fd"] = serial_out
        config_path.write_text(json.dumps(config))
        try:
            # errors="replace": the port may carry any bytes, and the report must still come.
            proc = subprocess.run(argv, env=env, cwd=cwd, stdin=serial_in, pass_fds=(serial_out,),
                                  capture_output=True, text=True, errors="replace", timeout=600)
        finally:
            os.close(serial_in)
            os.close(serial_out)
        if proc.returncode != 0 or not trace_path.exists():
            raise RuntimeError("the virtual device failed (exit %d):\n%s%s"
                               % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        world = json.loads(_trace_text(trace_path.read_bytes()))
        records = device_journal(root)
    return build_report(scenario, proc.stdout, world, records)


def device_journal(root):
    """What the device's journal holds at the end (its files under `root`), verified by the
    firmware's own journal.verify: {"records": [bodies], "problems": ["line N: ..."]}."""
    paths.firmware_import_path()
    import journal

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


def parse_lines(stdout):
    """The firmware's JSON lines: its events, its replies to serial requests ({"ok": ...}), and
    any other output (tracebacks, prints) kept as text."""
    lines, replies, other = [], [], []
    for line in device_lines.text(stdout).splitlines():
        obj = device_lines.parse(line)
        if isinstance(obj, dict) and "ev" in obj:
            lines.append(obj)
        elif isinstance(obj, dict) and "ok" in obj:
            replies.append(obj)
        elif line.startswith(("virtual device: ", "MPY: soft reboot")):
            continue  # the simulator telling of a reset, which the report's `resets` has
        elif line.strip():
            other.append(line)
    return lines, replies, other


MEASURED_EVENTS = ("state", "status", "halt")  # the lines that carry the status fields


def dose_bound(lines, delivered_j):
    """The most the dose the firmware's count stands at (`delivered_j`, its last status) can be:
    the last session line's delivered_max_j, a bound for a session a reset interrupted
    (docs/memory.md), unless a session was armed after it (its count starts again); else the
    count itself."""
    bound = None
    for obj in lines:
        if obj["ev"] == "session":
            bound = obj.get("delivered_max_j")
        elif obj["ev"] in MEASURED_EVENTS and obj.get("state") == "READY":
            bound = None
    return delivered_j if bound is None else bound


def serial_exchanges(inputs, replies):
    """Each line the scenario sent, with the reply the device gave. The device answers every
    line, one per tick in the order they came, so the n-th reply answers the n-th line; a line
    sent just before a reset or the end may have none."""
    sent = [(t, value) for t, name, value in inputs if name == "serial"]
    return [{"at_s": round(t, 3), "sent": line, "reply": replies[i] if i < len(replies) else None}
            for i, (t, line) in enumerate(sent)]


def build_report(scenario, stdout, world, journal=None):
    start_ms = scenario.get("clock_start_ms", 0)

    def at_s(t_ms):
        return round(((t_ms - start_ms) % _TICKS_PERIOD) / 1000.0, 3)

    protocol = scenario.get("protocol")
    lines, replies, other = parse_lines(stdout)
    states, faults, refusals, errors, thermal, sessions = [], [], [], [], [], []
    vetoes = []
    max_measured = None
    last = {}
    measured = []  # what the firmware itself reported: every state, status and halt line
    for obj in lines:
        ev = obj["ev"]
        if ev in MEASURED_EVENTS:
            measured.append((at_s(obj["t_ms"]), obj["state"], obj["power_w"], obj["temp_c"],
                             obj["delivered_j"]))
        if ev == "state":
            states.append({"at_s": at_s(obj["t_ms"]), "state": obj["state"]})
        elif ev == "fault":
            faults.append({"at_s": at_s(obj["t_ms"]), "code": obj["code"]})
        elif ev == "session":
            sessions.append({"at_s": at_s(obj["t_ms"]), "end": obj["end"],
                             "delivered_j": obj["delivered_j"],
                             "delivered_max_j": obj.get("delivered_max_j")})
        elif ev == "thermal":
            thermal.append({"at_s": at_s(obj["t_ms"]), "level": obj["level"],
                            "temp_c": obj.get("temp_c")})
        elif ev == "veto":
            vetoes.append({"at_s": at_s(obj["t_ms"]), "state": obj["state"], "why": obj["why"]})
        elif ev == "refused":
            refusals.append({"at_s": at_s(obj["t_ms"]), "reason": obj["reason"]})
        elif ev == "error":
            errors.append(obj)
        if obj.get("temp_c") is not None:
            max_measured = max(obj["temp_c"], max_measured or obj["temp_c"])
        if "delivered_j" in obj:
            last = obj

    # The world's trace is flat (see simworld.World): rows of 3 or 4 values, each beginning with
    # its time as whole seconds and microseconds.
    trace = world["trace"]
    optical = [(_seconds(s, us), uw / 1e6) for s, us, uw in _rows(trace["optical"], 3)]
    now_s = _seconds(*world["now_s_us"])
    intervals = emission_intervals(optical, now_s)
    inputs = [(_seconds(s, us), name, value)
              for s, us, name, value in _rows(trace["inputs"], 4)]
    temperatures = [(_seconds(s, us), sink, junction)
                    for s, us, sink, junction in _rows(trace["temperature"], 4)]
    screens = [(_seconds(s, us), changes)
               for s, us, changes in _rows(trace.get("display", []), 3)]
    report = {
        "description": scenario.get("description", ""),
        "board": scenario.get("board", "sim"),
        "protocol_name": protocol if isinstance(protocol, str) else None,
        "skin_type": scenario.get("skin_type"),
        "treatment": treatment_spec(scenario),  # the spec the device ran (a preset resolved)
        "final_state": last.get("state"),
        "target_j": last.get("target_j"),
        "delivered_j": last.get("delivered_j"),
        # What delivered_j may fall short of: a session a reset interrupted is known only within
        # a bound (docs/memory.md); a session the device saw end, exactly.
        "delivered_max_j": dose_bound(lines, last.get("delivered_j")),
        "emitted_j": round(world["emitted_j"], 4),
        "emitting_s": round(sum(b - a for a, b in intervals), 3),
        "states": states,
        "state_sequence": [s["state"] for s in states],
        "faults": faults,
        "fault_codes": [f["code"] for f in faults],
        "refusals": refusals,
        "sessions": sessions,
        "session_ends": [s["end"] for s in sessions],
        "thermal": thermal,
        "thermal_sequence": [t["level"] for t in thermal],
        "errors": errors + [{"output": line} for line in other],
        "emission_intervals": [[round(a, 3), round(b, 3)] for a, b in intervals],
        "reaction_ms": reaction_ms(inputs, optical),
        "temperature_c": {"max_true": round(world["max_true_c"], 3),
                          "max_junction": round(world["max_junction_c"], 3),
                          "max_measured": max_measured},
        "faults_injected": [{"at_s": t, "fault": value} if name == "fault"
                            else {"at_s": t, "fault": name, "factor": value}
                            for t, name, value in inputs if name in ("fault", "diode_degraded")],
        "fault_response": fault_response(inputs, optical, faults),
        # The state machine's request against the supervisor's verdict: each veto of a request,
        # and both as the last status line had them.
        "vetoes": vetoes,
        "supervisor": {"request": last.get("request"), "permit": last.get("permit"),
                       "why": last.get("why")},
        "resets": [{"at_s": _seconds(s, us), "cause": c} for s, us, c in trace["resets"]],
        # The loop's own count of late ticks, and the serial port: lines the firmware dropped for
        # want of room, and what the simulated UART carried and made the firmware wait for.
        "overruns": last.get("overruns"),
        "serial_dropped": last.get("serial_dropped"),
        "serial_port": _serial_port(world.get("uart")),
        "serial": serial_exchanges(inputs, replies),
        "ended_s": now_s,
        # The device's own record of the run (its journal at the end), where it was read.
        "journal": journal,
        # Each screen of the operator panel a person saw (shown 50 ms unchanged, or at the end),
        # read back from its pixels.
        "display": [{"at_s": t, "text": display.text(image)}
                    for t, image in display.frames(screens)],
        "trace": {"optical_w": optical,
                  "heatsink_c": [(t, sink / 1000) for t, sink, _ in temperatures],
                  "junction_c": [(t, junction / 1000) for t, _, junction in temperatures],
                  "inputs": inputs,
                  # (at_s, changes): each screen's bytes that differ from the one before
                  # (host_tools/display.py: frames)
                  "display": screens,
                  # (at_s, state, power_w, temp_c, delivered_j) as the firmware reported them
                  "measured": measured},
    }
    if scenario.get("expect"):
        report["expect"] = check_expect(scenario["expect"], report)
    return report


def _serial_port(uart):
    if uart is None:
        return None
    return {"baud": uart["baud"], "bytes": uart["bytes"], "waits": uart["waits"],
            "waited_ms": round(uart["waited_us"] / 1000.0, 3),
            "longest_wait_ms": round(uart["longest_wait_us"] / 1000.0, 3)}


def _seconds(s, us):
    """A time from the world's trace, whole seconds and microseconds, in seconds."""
    return (s * 1000000 + us) / 1e6


def _rows(flat, width):
    return [tuple(flat[i:i + width]) for i in range(0, len(flat), width)]


def emission_intervals(optical, end_s):
    """[(start_s, end_s)] during which the plant's optical power was above zero."""
    intervals, start = [], None
    for t, watts in optical:
        if watts > 0 and start is None:
            start = t
        elif watts <= 0 and start is not None:
            intervals.append((start, t))
            start = None
    if start is not None:
        intervals.append((start, end_s))
    return intervals


def reaction_ms(inputs, optical):
    """For each input that withdrew permission, and each injected thermistor_open or
    thermistor_short fault, while light was out: the worst delay to 0 W (None: it never
    stopped)."""
    worst = {}
    for t_ev, name, value in inputs:
        if name == "fault":
            if value not in STOPPING_FAULTS:
                continue
            name = value
        elif WITHDRAWING.get(name) is not value:
            continue
        if _power_at(optical, t_ev) <= 0:
            continue
        off = next((t for t, w in optical if t >= t_ev and w <= 0), None)
        delay = None if off is None else round((off - t_ev) * 1000.0, 3)
        if name not in worst or delay is None or (worst[name] is not None
                                                  and delay > worst[name]):
            worst[name] = delay
    return worst


def fault_response(inputs, optical, faults):
    """For each injected fault: whether light was out, how long until it was off (ms, None if it
    never went off, 0 if it was off already) and the first fault code reported at or after it,
    with its delay."""
    response = []
    for t_ev, name, value in inputs:
        if name not in ("fault", "diode_degraded"):
            continue
        emitting = _power_at(optical, t_ev) > 0
        off = t_ev if not emitting else next((t for t, w in optical if t >= t_ev and w <= 0),
                                             None)
        code = next((f for f in faults if f["at_s"] >= round(t_ev, 3)), None)
        response.append({
            "fault": value if name == "fault" else name, "at_s": round(t_ev, 3),
            "emitting": emitting,
            "light_off_ms": None if off is None else round((off - t_ev) * 1000.0, 3),
            "code": code and code["code"],
            "code_ms": code and round((code["at_s"] - t_ev) * 1000.0, 3)})
    return response


def _power_at(optical, t):
    """The optical power just before t (a change at t itself is the reaction, not the state)."""
    watts = 0.0
    for t_change, w in optical:
        if t_change >= t:
            break
        watts = w
    return watts


# -- expectations --------------------------------------------------------------------------------


def check_expect(expect, report):
    """Compare report fields (dotted paths, list indices allowed) with literals or
    {min, max, approx, rel, abs}."""
    failures = []
    for path, want in expect.items():
        value = report
        for part in path.split("."):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]  # "states.2.at_s": the third state's time
            else:
                value = None
        problem = _mismatch(value, want)
        if problem:
            failures.append("%s: %s" % (path, problem))
    return {"passed": not failures, "failures": failures}


def _mismatch(value, want):
    if not isinstance(want, dict):
        return None if value == want else "expected %r, got %r" % (want, value)
    unknown = set(want) - {"min", "max", "approx", "rel", "abs"}
    if unknown:
        return "unknown expectation keys %s" % sorted(unknown)
    if not _is_number(value):
        return "expected a number, got %r" % (value,)
    if "min" in want and value < want["min"]:
        return "%r is below the minimum %r" % (value, want["min"])
    if "max" in want and value > want["max"]:
        return "%r is above the maximum %r" % (value, want["max"])
    if "approx" in want:
        tolerance = max(want.get("rel", 0.001) * abs(want["approx"]), want.get("abs", 0.0))
        if abs(value - want["approx"]) > tolerance:
            return "%r is not within %g of %r" % (value, tolerance, want["approx"])
    return None
