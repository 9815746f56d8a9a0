"""`laserctl report REPORT.json [--expect SCENARIO.json]`: a scenario's report, and its
expectations checked.

Shared: the analysis of a run on the virtual device (`build_report`, which `laserctl scenario`
calls: what the firmware said, on its serial port, beside what the plant did, in the world's
trace) and the expectations (`check_expect`: the scenario file's "expect" block against the
report's fields), for `scenario`, `faults` and `plot`.

The command reads a report saved by `laserctl scenario --report`, prints its summary as `laserctl
scenario` does, and checks the expectations again without running anything: those of a scenario
file (--expect; e.g. expectations being written against a run that took long, on the chip
interpreter), else the verdict saved in the report.

Exit status: 0 the expectations held (or there are none); 1 one was missed; 2 the report or the
scenario file cannot be read.
"""

import json
import math
import sys

from host_tools import device_lines, display

# Inputs whose change withdraws permission to emit, and the value that withdraws it.
WITHDRAWING = {"footswitch": False, "key": False, "interlock": False, "estop": True,
               "footswitch_no": False, "footswitch_nc": True}
# The injected faults the firmware must answer by stopping emission at once: their reaction time
# is reported like the inputs'.
STOPPING_FAULTS = ("thermistor_open", "thermistor_short")
SUMMARY = ("final_state", "target_j", "delivered_j", "emitted_j", "fault_codes", "reaction_ms",
           "temperature_c")  # what `laserctl scenario` and `laserctl report` print of a report
_TICKS_PERIOD = 1 << 30  # time.ticks_ms() wraps here on the ESP32 (firmware/lib/ticks.py)


def dose_bound(lines, delivered_j):
    """The most the dose the firmware's count stands at (`delivered_j`, its last status) can be:
    the last session line's delivered_max_j, a bound for a session a reset interrupted
    (docs/memory.md), unless a session was armed after it (its count starts again); else the
    count itself."""
    bound = None
    for obj in lines:
        if obj["ev"] == "session":
            bound = obj.get("delivered_max_j")
        elif obj["ev"] in device_lines.STATUS_EVENTS and obj.get("state") == "READY":
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
    """The report of a run of `scenario` (validated): what the firmware printed (`stdout`), what
    the world traced (`world`, simworld's), the device's journal at the end (`journal`:
    scenario.device_journal's), and the expectations checked."""
    from host_tools import scenario as scenario_format  # which runs, and imports, this module

    start_ms = scenario.get("clock_start_ms", 0)

    def at_s(t_ms):
        return round(((t_ms - start_ms) % _TICKS_PERIOD) / 1000.0, 3)

    protocol = scenario.get("protocol")
    lines, replies, other = device_lines.split(stdout)
    states, faults, refusals, errors, thermal, sessions = [], [], [], [], [], []
    vetoes = []
    max_measured = None
    last = {}
    measured = []  # what the firmware itself reported: every state, status and halt line
    for obj in lines:
        ev = obj["ev"]
        if ev in device_lines.STATUS_EVENTS:
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
        "treatment": scenario_format.treatment_spec(scenario),  # a preset resolved
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
    if not is_number(value):
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


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary(report):
    """The one JSON line `laserctl scenario` prints of a report."""
    return json.dumps({k: report.get(k) for k in SUMMARY})


def print_verdict(report):
    """Print the firmware's errors and the missed expectations to stderr; the exit status."""
    for error in report.get("errors") or ():
        print("firmware:", error, file=sys.stderr)
    expect = report.get("expect")
    if expect and not expect["passed"]:
        for failure in expect["failures"]:
            print("expectation missed: " + failure, file=sys.stderr)
        return 1
    return 0


# -- the command ---------------------------------------------------------------------------------


def main(args):
    """`laserctl report`: see above."""
    try:
        with open(args.report) as f:
            report = json.load(f)
        if not isinstance(report, dict) or "final_state" not in report:
            raise ValueError("not a scenario report (laserctl scenario --report)")
        if args.expect is not None:
            with open(args.expect) as f:
                expect = json.load(f)
            if isinstance(expect, dict) and "expect" in expect:  # a scenario file
                expect = expect["expect"]
            if not isinstance(expect, dict):
                raise ValueError("%s: no \"expect\" object (report field: expectation)"
                                 % args.expect)
            report["expect"] = check_expect(expect, report)
    except (OSError, ValueError) as e:
        print("laserctl report: %s" % e, file=sys.stderr)
        return 2
    print(summary(report))
    expect = report.get("expect")
    if expect and expect["passed"]:
        print("expectations held", file=sys.stderr)
    return print_verdict(report)
