"""Shared: the `chip` block of `laserctl bench` (`make bench`): the firmware's figures on the
chip-shaped interpreter (build/chip/micropython: 32-bit, single floats, the ESP32's 56,000-byte
boot heap), which are the ones that count (docs/chip.md).

- Memory, per form of the firmware (frozen into the image, and the .mpy files for comparison), from
  host_tools/heap_probe.py: the firmware's real boot and the budget's worst workload in the ESP32's
  heap; `boot_peak_heap` is the smallest heap that boots it and runs the workload, found by
  bisection to within `step` bytes.
- Time, from host_tools/vdevice/mpy/firmware_alone.py: the firmware alone (no simulator) in the
  ESP32's heap, its tick in STANDBY and EMITTING and a collection's pause, in µs of this host.
- An ESTIMATED ESP32 tick: those µs times the ratio of Pystone 1.2 run here (MicroPython's own
  tests/perf_bench/misc_pystone.py, on the same interpreter) to published ESP32 figures. An
  estimate, not a measurement: the ESP32's figures come from other MicroPython versions, and the
  ESP32's native Pin/ADC calls, which the stand-in hardware here does not make, add to it.
"""

import tempfile
from pathlib import Path

from host_tools import chip, heap_probe, manifest, paths, vdevice

FORMS = ("frozen", "mpy")
HEAP_STEP = 256  # bytes: the bisection's resolution for boot_peak_heap
PYSTONE_PASSES = 20000
PYSTONE_REPEATS = 5
# Published Pystone 1.2 figures of MicroPython on an ESP32 at 240 MHz (pystone_lowmem, 500 passes:
# the benchmark misc_pystone.py is, without its low-memory changes): (pystones/s, what ran, where).
ESP32_PYSTONES = (
    (1661, "MicroPython v1.12, ESP32 at 240 MHz",
     "https://github.com/micropython/micropython/issues/5673"),
    (1602, "MicroPython v1.12, ESP32 at 240 MHz",
     "https://github.com/micropython/micropython/issues/6565"),
    (1014, "MicroPython v1.13-126, ESP32 at 240 MHz",
     "https://github.com/micropython/micropython/issues/6565"),
)
_PYSTONE_DRIVER = """
import time
Setup()
best = None
for _ in range(%d):
    t0 = time.ticks_us()
    Proc0(%d)
    dt = time.ticks_diff(time.ticks_us(), t0)
    best = dt if best is None or dt < best else best
print("PYSTONE-US", best)
"""


def pystone(passes=PYSTONE_PASSES, repeats=PYSTONE_REPEATS):
    """Pystone 1.2 on the chip interpreter in the ESP32's heap: the best of `repeats` runs of
    `passes` passes."""
    source = chip.micropython_tree() / "tests" / "perf_bench" / "misc_pystone.py"
    with tempfile.TemporaryDirectory(prefix="pystone-") as tmp:
        script = Path(tmp) / "pystone.py"
        script.write_text(source.read_text() + _PYSTONE_DRIVER % (repeats, passes))
        proc = vdevice.run(vdevice.command(None, script=script, heap=heap_probe.ESP32_HEAP,
                                           chip=True, path=()), timeout_s=300)
    for line in proc.stdout.splitlines():
        if line.startswith("PYSTONE-US "):
            best_us = int(line.split()[1])
            return {"passes": passes, "repeats": repeats, "best_us": best_us,
                    "pystones_per_s": passes * 1000000 // best_us,
                    "benchmark": "tests/perf_bench/misc_pystone.py of MicroPython v%s"
                                 % chip.MICROPYTHON_VERSION}
    raise RuntimeError("pystone failed (exit %d): %s" % (proc.returncode, proc.stderr[-1000:]))


def frozen_bytes():
    """What the image freezes of the firmware: firmware/lib compiled by the chip build's own
    mpy-cross (MicroPython v1.28.0's, as the image's): {"bytes", "files", "mpy_cross"}. The image
    adds its qstr and constant tables; the ESP32 image is not built here (docs/flashing.md)."""
    with tempfile.TemporaryDirectory(prefix="frozen-") as tmp:
        files = manifest.compile_sources(Path(tmp) / "mpy", mpy_cross=paths.CHIP_MPY_CROSS)
    lib = [f for f in files if f["source"].startswith("firmware/lib/")]
    return {"bytes": sum(f["bytes"] for f in lib), "files": len(lib),
            "mpy_cross": paths.rel(paths.CHIP_MPY_CROSS)}


def _form(figures):
    after_boot = figures["firmware"].get("after_boot", {})
    after = figures["firmware"].get("after_workload", {}) if figures["ok"] else {}
    return {"heap_total": 56000, "firmware_heap": figures["firmware_heap"], "ok": figures["ok"],
            "failed": figures["failed"] or figures["halted"],
            "resident_after_boot": after_boot.get("used"),
            "boot_peak_heap": figures["smallest_heap_workload"],
            "smallest_boot_heap": figures["smallest_heap_boot"],
            "free_after_workload": after.get("free"),
            "largest_free_block_after_workload": after.get("largest_free")}


def measure(step=HEAP_STEP):
    """The chip block: memory per form, the firmware's tick and a collection, the estimate."""
    block = {"interpreter": paths.rel(paths.chip_executable()),
             "board": heap_probe.BOARD, "workload": "host_tools/heap_probe.py (EVENTS)",
             "heap_step": step}
    for form in FORMS:
        block[form] = _form(heap_probe.measure(form, True, step))
    block["frozen_mpy"] = frozen_bytes()
    alone = heap_probe.firmware_alone("frozen")
    alone.pop("mem_info", None)
    block["firmware_alone_us"] = alone
    stone = pystone()
    block["pystone"] = stone
    ratios = [stone["pystones_per_s"] / per_s for per_s, _, _ in ESP32_PYSTONES]
    low, high = min(ratios), max(ratios)

    def esp32_ms(us):
        return [round(us * low / 1000, 1), round(us * high / 1000, 1)]

    block["esp32_estimate"] = {
        "what": "ESTIMATE, not a measurement: host µs of the firmware alone x (Pystone here / "
                "Pystone published for an ESP32 at 240 MHz); [fastest, slowest published]",
        "published": [{"pystones_per_s": p, "ran": ran, "source": url}
                      for p, ran, url in ESP32_PYSTONES],
        "ratio": [round(low, 1), round(high, 1)],
        "standby_tick_ms": esp32_ms(alone["standby_tick"]["median_us"]),
        "emitting_tick_ms": esp32_ms(alone["emitting_tick"]["median_us"]),
        "emitting_status_line_tick_ms": esp32_ms(alone["emitting_tick"]["status_line_median_us"]),
        "collection_ms": esp32_ms(alone["collect_emitting"]["median_us"]),
        # The longest tick the loop makes in EMITTING: a status line and the periodic collection.
        "emitting_worst_tick_ms": esp32_ms(alone["emitting_tick"]["status_line_median_us"]
                                           + alone["collect_emitting"]["median_us"]),
    }
    i2c = alone.get("i2c") or {}
    tick = alone["emitting_tick"]
    if i2c.get("panel") and "panel_draw_median_us" in tick:
        # The operator panel's share of a tick: a chunk drawn (with the bus time of what it sent,
        # computed from its bits at the bus's clock, not measured), or a row composed. It works
        # only in a tick that has used less than half the period (docs/panel.md): such a tick
        # ends by then plus that share.
        bus_ms = i2c["max_tick_us"] / 1000
        draw_us = tick["panel_draw_median_us"] - tick["median_us"]
        compose_us = tick.get("panel_compose_median_us", tick["median_us"]) - tick["median_us"]
        panel = {"draw_ms": [round(draw_us * r / 1000 + bus_ms, 1) for r in (low, high)],
                 "compose_ms": esp32_ms(compose_us), "i2c_bus_ms": round(bus_ms, 2),
                 "slack_ms": vdevice.load_board(heap_probe.BOARD)[1]["loop_ms"] / 2}
        panel["tick_bound_ms"] = round(panel["slack_ms"] + max(panel["draw_ms"][1],
                                                              panel["compose_ms"][1]), 1)
        block["esp32_estimate"]["panel"] = panel
    return block


def format_lines(block, loop_ms):
    """The chip block as table lines."""
    f, m = block["frozen"], block["mpy"]

    def cell(value):
        return "-" if value is None else f"{value:,}"

    lines = ["On the chip interpreter (%s: 32-bit, single floats), board %s, the ESP32's boot "
             "heap:" % (block["interpreter"], block["board"]),
             "%-56s %12s %12s" % ("", "frozen", ".mpy")]
    for label, key in (("heap_total, bytes", "heap_total"),
                       ("resident_after_boot", "resident_after_boot"),
                       ("boot_peak_heap (smallest heap for boot + workload)", "boot_peak_heap"),
                       ("smallest heap that boots", "smallest_boot_heap"),
                       ("free_after_workload (after a collection)", "free_after_workload"),
                       ("largest_free_block_after_workload", "largest_free_block_after_workload")):
        lines.append("%-56s %12s %12s" % (label, cell(f[key]), cell(m[key])))
    for name, form in (("frozen", f), (".mpy", m)):
        if not form["ok"]:
            lines.append("  %s in the 56,000-byte heap: %s" % (name, form["failed"]))
    frozen = block["frozen_mpy"]
    lines.append("Frozen into the image: firmware/lib as {:,} B of bytecode in {} modules ({})"
                 .format(frozen["bytes"], frozen["files"], frozen["mpy_cross"]))
    alone = block["firmware_alone_us"]
    standby, emitting = alone["standby_tick"], alone["emitting_tick"]
    lines.append("The firmware alone (no simulator), host µs, medians: STANDBY tick %d (with a "
                 "status line and the quarter-second collection %d); EMITTING tick %d (with a "
                 "status line %d); a collection %d (GC pause beside the tick)" % (
                     standby["median_us"], standby["status_line_median_us"],
                     emitting["median_us"], emitting["status_line_median_us"],
                     alone["collect_emitting"]["median_us"]))
    stone, est = block["pystone"], block["esp32_estimate"]
    lines.append("Pystone here: {:,}/s ({:,} passes, best of {}); published for an ESP32 at 240 "
                 "MHz: {} /s; ratio {}-{}".format(
                     stone["pystones_per_s"], stone["passes"], stone["repeats"],
                     ", ".join(str(p["pystones_per_s"]) for p in est["published"]),
                     *est["ratio"]))
    lines.append("ESTIMATED ESP32 (from that ratio, not measured), ms: STANDBY tick %s-%s; "
                 "EMITTING tick %s-%s, with a status line %s-%s, with it and a collection %s-%s; "
                 "a collection %s-%s. The loop's period: %d ms" % (
                     *est["standby_tick_ms"], *est["emitting_tick_ms"],
                     *est["emitting_status_line_tick_ms"], *est["emitting_worst_tick_ms"],
                     *est["collection_ms"], loop_ms))
    if "panel" in est:
        panel = est["panel"]
        lines.append("  the operator panel's share of an EMITTING tick: a chunk drawn %s-%s ms "
                     "(its I2C bus time, %s ms at 400 kHz, computed, included), a row composed "
                     "%s-%s ms; it works only while the loop's ticks take under %g ms, so such a "
                     "tick ends within %s ms (docs/panel.md)" % (
                         *panel["draw_ms"], panel["i2c_bus_ms"], *panel["compose_ms"],
                         panel["slack_ms"], panel["tick_bound_ms"]))
    return lines
