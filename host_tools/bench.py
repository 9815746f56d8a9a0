"""`laserctl bench` (`make bench`): the control tick measured on the MicroPython unix port.

Every figure here is measured in the run that prints it. First the `chip` block, the figures that
count: memory, the firmware's tick and a collection's pause on the chip-shaped interpreter, and an
estimated ESP32 tick (host_tools/bench_chip.py). Then, on the 64-bit unix port for comparison:

- the cost of one control tick in µs (real clock), and as a ratio to an empty loop (the same loop
  calling a method that does nothing) timed in the same run, for two steady states: STANDBY idle
  and EMITTING;
- the bytes the tick allocates (gc.mem_alloc around each tick, collector off): the mean over a
  realistic run (a status line every status period) and on a quiet tick, per stage of the tick,
  with the simulated machine's share measured apart from the firmware's;
- the firmware's own share of the heap after boot (modules, board, hardware, treatment, App);
- the size of the firmware compiled with mpy-cross (build/mpy/, every firmware/*.py and
  firmware/lib/*.py).

The device half is host_tools/vdevice/mpy/bench_tick.py, run on the virtual device's world.
"""

import datetime
import json
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools import bench_chip, manifest, paths, vdevice

BUILD = paths.REPO / "build"
MPY_DIR = BUILD / "mpy"
BOARD = "sim"
# Small like a board's heap, so the collector's share of the tick is in the mean; it also keeps
# gc.mem_alloc() quick (it walks the whole heap table). The simulator keeps no trace here
# (World.drop_trace): it would grow with the ticks. 384K ran out once the operator panel came
# (its modules compiled into this heap, the display's model beside them): the probes hold the
# collector off for 20 calls of Hardware.sense, whose simulated ADC allocates a few KB a call.
HEAP = "512K"
# Timing blocks per figure; the figure is the fastest block (the least disturbed by the rest of the
# host: other processes only ever add time), the median is in the JSON too.
REPEATS = 5
# 5 W as in a real session; 5000 J keeps the bench in EMITTING for 1000 s of virtual time, far
# longer than the longest run allows (MAX_TICKS: about 6 x 10000 ticks of 10 ms per state).
TREATMENT = {"power_w": 5.0, "dose_j_cm2": 50.0, "area_cm2": 100.0}
MIN_TICKS = 50
MAX_TICKS = 10000
STATES = ("STANDBY", "EMITTING")
# The quiet-tick check (quiet_tick_bytes): 2 s, the medium alarm's burst (1.2 s) and after it.
QUIET_TICKS = 200
QUIET_STATES = ("STANDBY", "EMITTING", "EMITTING_WARNING")
NOTES = (
    "Unix port: objects are 64-bit and floats double (GC block 32 B; ESP32: 16 B), so every "
    "heap figure is larger than on an ESP32. Floats are heap objects on both (the ESP32 port "
    "uses object representation A): a float that allocates here allocates there, one block.",
    "Tick µs are this host's CPU running the unix port, not an ESP32: compare them with the "
    "empty-loop ratio and with each other, not with the 10 ms period.",
    "The tick includes the simulated machine (Python code standing in for the ESP32's native "
    "Pin/PWM/ADC): its bytes and µs are measured apart, inside wrappers, in a separate pass.",
    "The world's clock stands still during a measurement (no plant integration); the firmware's "
    "now_ms advances by loop_ms per tick.",
    "Blind spot: integers beyond +-2**30 are heap objects on the ESP32 but small here (2**62), "
    "so an allocation that only such an integer causes does not show in these figures.",
)


def firmware_sources():
    """Every .py file a stock MicroPython gets (manifest.deploy_files: the firmware's and the
    micropython-lib driver it uses), as (path, name on the device)."""
    return [(path, name) for name, path in sorted(manifest.deploy_files(BOARD).items())
            if name.endswith(".py")]


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_device(root, config, chip=False):
    """Run bench_tick.py in the device image `root`; return its result dict. `chip`: on the chip
    interpreter, where bench_tick, the simulated machine and the firmware are frozen in (the
    image made with vdevice.make_image(..., frozen=True))."""
    config_path = Path(root).parent / ("bench-%s.json" % Path(root).name)
    config_path.write_text(json.dumps(config))
    # The serial port: a host connected and silent (a pipe nobody writes), so that every tick
    # polls it and finds nothing, as on a board with its USB cable in.
    command = vdevice.command(root, config_path, "bench_tick", heap=HEAP, chip=chip)
    proc = vdevice.run(command)
    argv = command[0]
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result = json.loads(line[len("BENCH-RESULT "):])
    if proc.returncode != 0 or result is None:
        raise RuntimeError("the bench failed on the interpreter (exit %d):\n%s%s"
                           % (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:]))
    return result, argv


def measure(ticks, command, heap_step=bench_chip.HEAP_STEP):
    """Everything: compile, run both interpreter passes, and build the report dict."""
    mpy_files = manifest.compile_sources(MPY_DIR, BOARD)
    with tempfile.TemporaryDirectory(prefix="laser-bench-") as tmp:
        root = Path(tmp) / "device"
        board = vdevice.make_image(root, BOARD, TREATMENT)
        sim = vdevice.sim_config(board, ambient_c=25.0)
        raw, argv = run_device(root, {"sim": sim, "ticks": ticks, "repeats": REPEATS})
        # The same boot with the firmware loaded from the .mpy files instead of the sources.
        mpy_root = Path(tmp) / "device-mpy"
        vdevice.make_image(mpy_root, BOARD, TREATMENT, mpy=True)
        heap_mpy, _ = run_device(mpy_root, {"sim": sim, "ticks": ticks, "repeats": 1,
                                            "heap_only": True})
    report = summarize(raw, heap_mpy["heap"], mpy_files, argv, command)
    report["quiet_tick_bytes"] = {"chip": quiet_tick_bytes(chip=True), "ticks": QUIET_TICKS}
    report["chip"] = bench_chip.measure(heap_step)
    return report


def quiet_tick_bytes(ticks=QUIET_TICKS, chip=True):
    """The firmware's own bytes per quiet tick (the tick's, less the simulated machine's counted in
    the same tick) in each of QUIET_STATES, on the chip interpreter (or the 64-bit port), over
    `ticks` from the state's start: {state: {"firmware_bytes", "sim_bytes", "quiet_ticks",
    "state", "thermal", "alarm", "allocating_calls"}}.
    EMITTING_WARNING: the room at the board's max_ambient_c (the warmest the runaway check
    allows) and the heatsink 0.1 C under warning_c when the world begins: the treatment's own
    heat takes it into WARNING (below derating), and the measurement begins with the medium
    alarm's first burst."""
    result = {}
    with tempfile.TemporaryDirectory(prefix="laser-quiet-") as tmp:
        for warm in (False, True):
            root = Path(tmp) / ("warm" if warm else "normal")
            board = vdevice.make_image(root, BOARD, TREATMENT, frozen=chip)
            thermal = board["thermal"]
            config = {"ticks": ticks, "repeats": 1, "alloc_only": True}
            if warm:
                config.update(sim=vdevice.sim_config(board, ambient_c=thermal["max_ambient_c"]),
                              heatsink_c=thermal["warning_c"] - 0.1, warning_within_s=120,
                              states=["EMITTING"])
            else:
                config["sim"] = vdevice.sim_config(board, ambient_c=25.0)
            raw, _ = run_device(root, config, chip)
            for name, r in raw["states"].items():
                quiet = r["sim"]["quiet"]  # each tick's bytes, the simulated share in them
                ticks, sim_bytes = quiet["ticks"], sum(quiet["sim_bytes"])
                result[name + ("_WARNING" if warm else "")] = {
                    "firmware_bytes": (sum(quiet["bytes"]) - sim_bytes) / ticks,
                    "sim_bytes": sim_bytes / ticks, "quiet_ticks": ticks,
                    "state": r["state"], "thermal": r["thermal"], "alarm": r["alarm"],
                    "allocating_calls": [c for c in r["probes"] if c.get("max") or "error" in c]}
    return result


def summarize(raw, heap_mpy, mpy_files, argv, command):
    ticks = raw["ticks"]
    stages = raw["stages"]
    report = {
        "command": command,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "interpreter": {
            "executable": paths.rel(argv[0]),
            "argv": [paths.rel(a) if Path(a).exists() else a for a in argv],
            "heapsize": HEAP, **raw["interpreter"],
            "mpy_cross": manifest.mpy_cross_banner(),
        },
        "host": {"cpu": _cpu(), "machine": platform.machine(), "python": platform.python_version()},
        "board": BOARD, "treatment": TREATMENT, "ticks": ticks, "repeats": raw["repeats"],
        "loop_ms": raw["loop_ms"], "status_period_ms": raw["status_period_ms"],
        "states": {name: _state(raw["states"][name], ticks, stages) for name in STATES},
        "heap_after_boot": {"bytes": raw["heap"]["total"], "parts": raw["heap"],
                            "from_mpy_bytes": heap_mpy["total"], "from_mpy_parts": heap_mpy},
        "mpy": {"total_bytes": sum(f["bytes"] for f in mpy_files), "files": mpy_files,
                "dir": paths.rel(MPY_DIR),
                "command": "mpy-cross -s NAME -o build/mpy/NAME.mpy SRC"},
        "notes": list(NOTES),
    }
    return report


def _median(values):
    return statistics.median(values) if values else None


def _hist(raw):
    """A histogram from the device, {value: count}, with its JSON string keys made numbers."""
    return {int(k): v for k, v in raw.items()}


def _hist_json(hist):
    return {str(k): hist[k] for k in sorted(hist)}


def _count(hist):
    return sum(hist.values())


def _total(hist):
    return sum(k * v for k, v in hist.items())


def _hist_median(hist):
    return _median([v for v in sorted(hist) for _ in range(hist[v])])


def _stage_rows(r, stage_names):
    """Each stage's bytes and µs, the simulated machine's share apart."""
    stage_rows = []
    st, sim = r["stages"], r["sim"]
    for k, name in enumerate(stage_names):
        q, s, qs = st["quiet"], st["status"], sim["quiet"]
        nq, ns, nqs = q["ticks"], s["ticks"], qs["ticks"]
        row = {
            "stage": name,
            "quiet_us": q["us"][k] / nq if nq else None,
            "quiet_bytes": q["bytes"][k] / nq if nq else None,
            "quiet_bytes_min": q["min_bytes"][k], "quiet_bytes_max": q["max_bytes"][k],
            "status_bytes": s["bytes"][k] / ns if ns else None,
            "mean_bytes": (q["bytes"][k] + s["bytes"][k]) / (nq + ns),
            "sim_quiet_bytes": qs["sim_bytes"][k] / nqs if nqs else None,
            "sim_quiet_us": qs["sim_us"][k] / nqs if nqs else None,
        }
        if row["quiet_bytes"] is not None and row["sim_quiet_bytes"] is not None:
            row["firmware_quiet_bytes"] = row["quiet_bytes"] - row["sim_quiet_bytes"]
        stage_rows.append(row)
    return stage_rows


def _state(r, ticks, stage_names):
    timing = r["timing"]
    tick_us = min(timing["tick_block_us"]) / ticks
    empty_us = min(timing["empty_block_us"]) / ticks
    quiet_b, quiet_us = _hist(r["per_tick"]["quiet"]["bytes"]), _hist(r["per_tick"]["quiet"]["us"])
    status_b = _hist(r["per_tick"]["status"]["bytes"])
    status_us = _hist(r["per_tick"]["status"]["us"])
    stage_rows = _stage_rows(r, stage_names)
    tick_mean_bytes = (_total(quiet_b) + _total(status_b)) / ticks
    stage_sum = sum(row["mean_bytes"] for row in stage_rows)
    quiet_sim = sum(row["sim_quiet_bytes"] or 0 for row in stage_rows)
    quiet_fw = sum(row.get("firmware_quiet_bytes") or 0 for row in stage_rows)
    return {
        "state": r["state"], "laser_enable": r["laser_enable"],
        "tick_us": tick_us, "empty_loop_us": empty_us, "ratio": tick_us / empty_us,
        "tick_us_median_of_blocks": _median(timing["tick_block_us"]) / ticks,
        "empty_loop_us_median_of_blocks": _median(timing["empty_block_us"]) / ticks,
        "tick_block_us": timing["tick_block_us"], "empty_block_us": timing["empty_block_us"],
        "quiet_tick_us_median": _hist_median(quiet_us),
        "status_tick_us_median": _hist_median(status_us),
        "tick_us_max_gc_off": max(list(quiet_us) + list(status_us)),
        "bytes_per_tick_mean": tick_mean_bytes,
        "quiet_ticks": _count(quiet_b), "status_ticks": _count(status_b),
        "quiet_tick_bytes_min": min(quiet_b) if quiet_b else None,
        "quiet_tick_bytes_max": max(quiet_b) if quiet_b else None,
        "status_tick_bytes_mean": _total(status_b) / _count(status_b) if status_b else None,
        "tick_bytes_histogram": {"quiet": _hist_json(quiet_b), "status": _hist_json(status_b)},
        "quiet_tick_sim_bytes": quiet_sim, "quiet_tick_firmware_bytes": quiet_fw,
        "quiet_tick_sim_us": sum(row["sim_quiet_us"] or 0 for row in stage_rows),
        "stages": stage_rows,
        "stages_check": {"sum_of_stages_bytes_per_tick": stage_sum,
                         "app_tick_bytes_per_tick": tick_mean_bytes,
                         "difference": stage_sum - tick_mean_bytes},
        "calls": r["probes"],
    }


# -- output ------------------------------------------------------------------------------------


def _num(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return "%d" % round(value)
    return "%.*f" % (digits, value)


def _dotted(version):
    numbers = [str(v) for v in version if isinstance(v, int)]
    extra = [str(v) for v in version if not isinstance(v, int) and v]
    return "-".join([".".join(numbers)] + extra)


def _hist_text(hist):
    return ", ".join("%d x %s B" % (n, b) for b, n in hist.items()) or "none"


def format_table(report):
    command = report["command"]
    s = {name: report["states"][name] for name in STATES}
    it = report["interpreter"]
    lines = [
        "$ " + command,
        "MicroPython %s (unix port, %s), heap %s; mpy-cross: %s" % (
            _dotted(it["implementation"][1]), it["version"], it["heapsize"], it["mpy_cross"]),
        "host CPU: %s; %d ticks of %d ms per figure; µs: the fastest of %d timing blocks" % (
            report["host"]["cpu"], report["ticks"], report["loop_ms"], report["repeats"]),
        "",
    ]
    lines += bench_chip.format_lines(report["chip"], report["loop_ms"])
    lines += ["", "For comparison, on the 64-bit unix port (objects twice the size, double floats, "
                  "no heap limit):", ""]

    def row(label, key, digits=0, unit=""):
        values = [_num(s[n][key], digits) + unit for n in STATES]
        return "%-60s %12s %12s" % (label, values[0], values[1])

    every = report["status_period_ms"] // report["loop_ms"]
    lines += [
        "%-60s %12s %12s" % ("", *STATES),
        row("control tick, µs (mean over a block, GC on, status lines in)", "tick_us", 2),
        row("empty-loop reference, µs per iteration", "empty_loop_us", 3),
        row("ratio tick / empty loop", "ratio", 0, "x"),
        row("quiet tick, µs (median, GC off)", "quiet_tick_us_median", 0),
        row("status-line tick, µs (median, GC off)", "status_tick_us_median", 0),
        row("bytes allocated per tick (mean over the run)", "bytes_per_tick_mean", 1),
        "%-60s %12s %12s" % ("bytes allocated on a quiet tick", *[
            _num(s[n]["quiet_tick_bytes_min"]) if s[n]["quiet_tick_bytes_min"]
            == s[n]["quiet_tick_bytes_max"] else "%s-%s" % (
                _num(s[n]["quiet_tick_bytes_min"]), _num(s[n]["quiet_tick_bytes_max"]))
            for n in STATES]),
        row("  of which the simulated machine", "quiet_tick_sim_bytes", 0),
        row("  of which the firmware", "quiet_tick_firmware_bytes", 0),
        row("bytes on a status-line tick (1 in %d)" % every, "status_tick_bytes_mean", 0),
        "",
    ]
    heap = report["heap_after_boot"]
    parts = heap["parts"]
    lines.append("heap in use after boot, firmware's share: %d B from .py sources (modules %d + "
                 "calibration %d, board %d, hardware %d, treatment %d, app %d); %d B from .mpy"
                 % (heap["bytes"], parts["modules"], parts["calibration_module"], parts["board"],
                    parts["hardware"], parts["treatment"], parts["app"], heap["from_mpy_bytes"]))
    lines.append("  (hardware includes the simulated Pin/PWM/ADC objects: one simulated Pin is "
                 "%d B here; ESP32 Pin objects are static)" % parts["one_simulated_pin"])
    mpy = report["mpy"]
    lines.append(".mpy total: %d B in %d files (%s)" % (mpy["total_bytes"], len(mpy["files"]),
                                                         mpy["dir"]))
    lines.append("")
    lines.append("Per stage, quiet tick (GC off). sim = the simulated machine's share, measured "
                 "inside wrappers in a")
    lines.append("separate pass (its µs include the wrappers' own call overhead).")
    lines.append("%-20s %-35s  %-35s" % ("", STATES[0].center(35, "-"), STATES[1].center(35, "-")))
    head = "%7s %7s %9s %9s  " % ("µs", "B", "sim B", "sim µs")
    lines.append("%-20s %s %s" % ("stage", head, head))
    for k, st in enumerate(s["STANDBY"]["stages"]):
        cells = []
        for name in STATES:
            r = s[name]["stages"][k]
            cells.append("%7s %7s %9s %9s  " % (
                _num(r["quiet_us"], 1), _num(r["quiet_bytes"]), _num(r["sim_quiet_bytes"]),
                _num(r["sim_quiet_us"], 1)))
        lines.append("%-20s %s %s" % (st["stage"], cells[0], cells[1]))
    lines.append("")
    for name in STATES:
        st = s[name]
        hist = st["tick_bytes_histogram"]
        lines.append("%s: ticks by bytes allocated: quiet %s; status line %s" % (
            name, _hist_text(hist["quiet"]), _hist_text(hist["status"])))
        firmware = ", ".join("%s %s B" % (r["stage"], _num(r["firmware_quiet_bytes"]))
                             for r in st["stages"] if r.get("firmware_quiet_bytes"))
        lines.append("  the firmware's own allocation on a quiet tick: %s" % (firmware or "none"))
        status_stages = ", ".join("%s +%s B" % (r["stage"], _num(r["status_bytes"]
                                                                 - r["quiet_bytes"]))
                                  for r in st["stages"]
                                  if (r["status_bytes"] or 0) != (r["quiet_bytes"] or 0))
        check = st["stages_check"]
        lines.append("  a status-line tick adds: %s; the stages sum to %.1f B/tick, app.tick() "
                     "measured %.1f B/tick" % (status_stages or "nothing",
                                               check["sum_of_stages_bytes_per_tick"],
                                               check["app_tick_bytes_per_tick"]))
    lines.append("")
    lines.append("What allocates, call by call in the steady state (bytes per call; every other "
                 "call measured: 0)")
    lines.append("  %-48s %9s %9s" % ("", *STATES))
    by_call = {}
    for name in STATES:
        for c in s[name]["calls"]:
            by_call.setdefault(c["call"], {})[name] = c
    for call, per_state in by_call.items():
        cells = []
        for name in STATES:
            c = per_state.get(name, {})
            cells.append(c["error"] if "error" in c else _num(c.get("max")))
        if any(cell != "0" for cell in cells):
            lines.append("  %-48s %9s %9s" % (call, cells[0], cells[1]))
    lines.append("")
    quiet = report["quiet_tick_bytes"]
    states = ", ".join("%s%s %s B" % (name, " (%s alarm)" % r["alarm"] if r["alarm"] != "NONE"
                                      else "", _num(r["firmware_bytes"]))
                       for name, r in quiet["chip"].items())
    lines.append("The firmware's bytes on a quiet tick on the chip interpreter (32-bit, the "
                 "firmware frozen), %d ticks each: %s" % (quiet["ticks"], states))
    lines.append("")
    lines += ["note: " + n for n in report["notes"]]
    return "\n".join(line.rstrip() for line in lines)


def command_line(args):
    argv = ["laserctl", "bench"]
    if getattr(args, "out", None):
        argv += ["--out", str(args.out)]
    argv += ["--ticks", str(args.ticks)]
    if getattr(args, "heap_step", bench_chip.HEAP_STEP) != bench_chip.HEAP_STEP:
        argv += ["--heap-step", str(args.heap_step)]
    return shlex.join(argv)


def main(args):
    ticks = args.ticks
    if not MIN_TICKS <= ticks <= MAX_TICKS:
        print("laserctl bench: --ticks must be within %d..%d, got %d"
              % (MIN_TICKS, MAX_TICKS, ticks), file=sys.stderr)
        return 2
    heap_step = getattr(args, "heap_step", bench_chip.HEAP_STEP)
    if not 16 <= heap_step <= 16384:
        print("laserctl bench: --heap-step must be within 16..16384 bytes, got %d" % heap_step,
              file=sys.stderr)
        return 2
    command = command_line(args)
    try:
        report = measure(ticks, command, heap_step)
    except (RuntimeError, FileNotFoundError, subprocess.TimeoutExpired,
            manifest.BuildError) as e:
        print("laserctl bench: %s" % e, file=sys.stderr)
        return 1
    print(format_table(report))
    if getattr(args, "out", None):
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print("\nwrote " + str(out))
    return 0
