"""`laserctl faults`: every single fault of docs/hazards.md, injected into the virtual device during
emission, one scenario each (tests/scenarios/faults/, plus the shipped scenarios that withdraw an
input or break a sensor mid-treatment). `run_all` runs them and returns, per fault, what stopped
the light, how fast, and which fault code the firmware latched; `make bench` prints the table and
tests/test_faults.py holds every scenario's bounds.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host_tools import paths, scenario

SCENARIOS = paths.REPO / "tests" / "scenarios"
# The shipped scenarios that inject a fault while the laser emits (the rest are in faults/).
DURING_EMISSION = ("interlock_opened", "key_removed", "estop", "footswitch_wire_broken",
                   "thermistor_open_during_emission", "thermistor_short_during_emission",
                   "thermistor_stuck_during_emission", "fan_failure_at_max_power",
                   "diode_degraded", "diode_overdriven")


def scenario_files():
    files = [SCENARIOS / (name + ".json") for name in DURING_EMISSION]
    return files + sorted((SCENARIOS / "faults").glob("*.json"))


def run_one(path):
    """Run one scenario: (path, report)."""
    data, board = scenario.load(path)
    return path, scenario.run(data, board)


def summarize(path, report):
    """One row: the fault (an injected fault, or the input that withdrew permission), the time
    from it to the light off, the fault code latched and when, and whether every expectation of
    the scenario held."""
    injected = report["fault_response"]
    if injected:
        first = injected[0]
        fault, off_ms, code, code_ms = (first["fault"], first["light_off_ms"], first["code"],
                                        first["code_ms"])
    else:
        fault, off_ms = next(iter(report["reaction_ms"].items()), (None, None))
        code = report["fault_codes"][0] if report["fault_codes"] else None
        code_ms = None
    expect = report.get("expect", {"passed": True, "failures": []})
    return {"scenario": Path(path).stem, "fault": fault, "light_off_ms": off_ms,
            "fault_code": code, "code_ms": code_ms, "session_ends": report["session_ends"],
            "passed": expect["passed"], "failures": expect["failures"]}


def run_all(jobs=2):
    """Every fault-injection scenario (in parallel: each is its own interpreter); the rows."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(run_one, scenario_files()))
    return [summarize(path, report) for path, report in results]


def format_table(rows):
    def ms(value):
        return "-" if value is None else "%g" % value

    lines = ["%-34s %-24s %12s  %-24s %10s  %s" % ("scenario", "fault", "light off ms",
                                                   "fault code", "code ms", "result")]
    for r in rows:
        lines.append("%-34s %-24s %12s  %-24s %10s  %s" % (
            r["scenario"], r["fault"], ms(r["light_off_ms"]), r["fault_code"] or "-",
            ms(r["code_ms"]), "ok" if r["passed"] else "MISSED: " + "; ".join(r["failures"])))
    return "\n".join(lines)


def main(args):
    """`laserctl faults [--out FILE]`: run them all, print the table; 1 if any bound missed."""
    out = args.out
    rows = run_all()
    print(format_table(rows))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["passed"] for r in rows) else 1
