"""Shared: the firmware's heap on the chip-shaped interpreter, for `laserctl bench`'s chip block:
after boot, the smallest heap that boots, and what is left after a treatment. `python -m
host_tools.heap_probe --help`.

Runs the firmware's real boot (boot.py, then main.py: the board file, the settings, a journal a
few records short of its rotation size, the self-test) on `build/chip/micropython` with hw.py over
the simulated machine, then a scenario's workload, and reads `micropython.mem_info()` at two points
(host_tools/vdevice/mpy/heap_probe.py):

- after boot, just before the loop starts, after a collection;
- after the workload, the App still alive, after a collection.

mem_info() on this build: "GC: total, used, free" are bytes; "max free sz" (the largest free run,
what the next big allocation can get) and "max blk sz" are in GC blocks of 16 bytes (4 words of
4 bytes: MICROPY_BYTES_PER_GC_BLOCK, as on the ESP32). `gc.mem_free()` alone says nothing of
fragmentation (and on the ESP32 it adds the system heap's largest block).

Two forms of the firmware: "frozen" (firmware/lib frozen into the interpreter, the image holding
only boot.py, main.py, the board, the presets and a manifest of them) and "mpy" (firmware/lib as
.mpy files in lib/, ahead of the frozen copy on the path, as `laserctl deploy` ships it today).

The simulated machine's share is measured apart and reported: its bytecode is frozen, its trace
replaced with a sink, the World object and the simulated pins are in the heap (the pins are
counted in the firmware's figure: hw.py creates them; on the chip they are native objects).
"""

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from host_tools import device_lines, image, paths, vdevice

BOARD = "esp32-devkitc"  # what the firmware boots on
WORLD_BOARD = "sim-devkitc"  # the same parts with a plant, for the simulated world
ESP32_HEAP = 57344  # -X heapsize giving GC total 56,000 bytes: the ESP32's boot heap
BLOCK_BYTES = 16
# 15 W, the board's maximum, for 60 s of light: the heatsink warms into the warning level.
TREATMENT = {"power_w": 15.0, "dose_j_cm2": 9.0, "area_cm2": 100.0}


def _serial(at_s, **request):
    return {"at_s": at_s, "serial": json.dumps(request)}


# The workload: requests before, a treatment at the board's maximum power with two pauses to
# COMPLETE (the heatsink warms into WARNING: the medium alarm sounds) with status requests in it and
# the periodic status lines throughout, the journal paged, a preset selected, a service session that
# saves the settings (their effective board is built again), more requests after. The journal
# starts JOURNAL_FILL_BYTES short of its rotation size, so the workload's records rotate it.
EVENTS = [
    {"at_s": 0.5, "input": "key", "value": True},
    _serial(1.0, cmd="status"),
    _serial(1.5, cmd="list"),
    _serial(2.0, cmd="journal", count=4),
    _serial(3.0, cmd="arm"),
    {"at_s": 6.0, "input": "footswitch", "value": True},
    _serial(10.0, cmd="status"),
    {"at_s": 25.0, "input": "footswitch", "value": False},
    _serial(26.0, cmd="status"),
    {"at_s": 28.0, "input": "footswitch", "value": True},
    {"at_s": 48.0, "input": "footswitch", "value": False},
    {"at_s": 49.0, "input": "footswitch", "value": True},
    _serial(60.0, cmd="status"),
    _serial(75.0, cmd="ack"),
    _serial(76.0, cmd="journal", count=4),
    _serial(77.0, cmd="list"),
    _serial(77.5, cmd="select", protocol="low-back-acute", skin_type=5),
    _serial(78.0, cmd="service", pin="000000"),
    _serial(79.0, cmd="limits", max_power_w=14.0),
    _serial(80.0, cmd="journal_export", count=4),
    _serial(81.0, cmd="logout"),
    _serial(82.0, cmd="status"),
]
UNTIL_S = 84.0
BOOT_S = 0.5  # long enough for the boot and the loop's first tick: the boot-only runs
SEARCH_CEILING = 140000  # bytes: the .mpy form boots in less (docs/chip.md)
REQUESTS = sum(1 for e in EVENTS if "serial" in e)
# The journal in the image: realistic records (a boot, then sessions) up to this many bytes short of
# journal.Journal.file_bytes; the workload's boot record and first session take it past the size.
JOURNAL_FILL_BYTES = 300

_GC_LINE = re.compile(r"GC: total: (\d+), used: (\d+), free: (\d+)")
_BLOCKS_LINE = re.compile(r"max blk sz: (\d+), max free sz: (\d+)")
_LAYOUT_LINE = re.compile(r"GC memory layout; from ([0-9a-f]+):")
_MAP_LINE = re.compile(r"[0-9a-f]{8}:")
_FREE_LINES = re.compile(r"\((\d+) lines all free\)")
_FREE_RUN = re.compile(r"\.+")


def make_image(root, form):
    """A device filesystem for `form` ("frozen" or "mpy"), its manifest over what it holds."""
    # The chip interpreter carries the frozen image: the manifest names it, also over the .mpy
    # files (on lib/, ahead of the frozen modules on the path: MICROPYPATH, run()).
    vdevice.make_image(root, BOARD, TREATMENT, frozen=form == "frozen", mpy=form == "mpy",
                       image_id=image.build_id())
    fill_journal(root)


def fill_journal(root):
    """A journal.log in `root` written by the firmware's own journal module (its chain valid),
    holding a boot and then treatment sessions up to JOURNAL_FILL_BYTES short of its rotation
    size. Returns its size in bytes."""
    flash = paths.firmware_module("flash")
    journal = paths.firmware_module("journal")

    log = journal.Journal(flash.Flash(), str(Path(root) / "journal.log"),
                          str(Path(root) / "journal.old"))
    limit = log.file_bytes - JOURNAL_FILL_BYTES
    records = [{"ev": "boot", "version": "0.2.0", "image": image.build_id(), "reset": "RESET",
                "boot": 1}]
    while True:
        n = log.last_n
        records += [
            {"ev": "arm", "protocol": "knee-osteoarthritis", "skin_type": 3, "target_j": 600.0,
             "power_w": 10.0},
            {"ev": "session", "end": "COMPLETE", "arm_n": n + 1, "protocol":
             "knee-osteoarthritis", "skin_type": 3, "target_j": 600.0, "power_w": 10.0,
             "delivered_j": 599.98, "emitting_s": 60.0, "pauses": 1, "fault": None}]
        size = log.flash.size(log.path) or 0
        if size + sum(len(json.dumps(r)) + 80 for r in records) > limit:
            return size
        for record in records:
            log.append(record)
        records = []


def run(image, form, heap, interpreter=None, until_s=UNTIL_S):
    """Boot and run the workload once on a fresh copy of the image folder `image` (a run
    changes the settings and the journal); return the parsed result. A smaller `until_s` cuts
    the workload short (a boot alone: BOOT_S)."""
    image = Path(image)
    root = image.parent / "run"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(image, root)
    _, world_board = vdevice.load_board(WORLD_BOARD)
    # The warmest room the board is rated for: the treatment's heat takes the heatsink into
    # WARNING (the medium alarm, a thermal event), the worst the loop meets short of a fault.
    sim = vdevice.sim_config(world_board, until_s=until_s, events=EVENTS,
                             ambient_c=world_board["thermal"]["max_ambient_c"])
    config_path = root.parent / ("probe-%s.json" % root.name)

    def serial(fd):  # the workload's requests, written by the world at their times
        sim["serial_fd"] = fd
        config_path.write_text(json.dumps({"sim": sim, "world_board": world_board}))

    proc = vdevice.run(vdevice.command(root, config_path, "heap_probe", heap=heap, chip=True,
                                       path=_path(form), interpreter=interpreter),
                       timeout_s=900, serial=serial)
    result = parse(proc.stdout, proc.stderr, proc.returncode)
    result["journal_bytes"] = {name: (root / name).stat().st_size
                               for name in ("journal.log", "journal.old")
                               if (root / name).exists()}
    return result


def parse(stdout, stderr="", returncode=0):
    result = {"reports": {}, "failed": None, "firmware_errors": [], "faults": [],
              "session_ends": [], "replies": [], "thermal_levels": [], "status_lines": 0,
              "halted": None, "returncode": returncode}
    lines = stdout.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("PROBE "):
            name = line[len("PROBE "):]
            block = []
            i += 1
            while i < len(lines) and lines[i] != "PROBE-END":
                block.append(lines[i])
                i += 1
            result["reports"][name] = _mem_info("\n".join(block))
        elif line.startswith("PROBE-SIM "):
            result["sim"] = json.loads(line[len("PROBE-SIM "):])
        elif line.startswith("PROBE-FAILED "):
            result["failed"] = line[len("PROBE-FAILED "):]
        elif line.startswith("PROBE-STATE "):
            result["final_state"] = int(line.split()[1])
        elif line.startswith("{"):
            record = device_lines.parse(line)
            ev = record["ev"] if device_lines.is_event(record) else None
            if ev == "error":
                result["firmware_errors"].append(record.get("error"))
            elif ev == "fault":
                result["faults"].append(record.get("code"))
            elif ev == "session":
                result["session_ends"].append(record.get("end"))
            elif ev == "thermal":
                result["thermal_levels"].append(record.get("level"))
            elif ev == "status":
                result["status_lines"] += 1
            elif ev == "halted":
                result["halted"] = record.get("reason")
            elif device_lines.is_reply(record):
                result["replies"].append(record)
        i += 1
    if returncode != 0 and result["failed"] is None:
        result["failed"] = "exit %d: %s" % (returncode, stderr.strip()[-500:])
    return result


def _mem_info(text):
    gc_line = _GC_LINE.search(text)
    blocks = _BLOCKS_LINE.search(text)
    if not gc_line or not blocks:
        return {"raw": text}
    info = {"total": int(gc_line.group(1)), "used": int(gc_line.group(2)),
            "free": int(gc_line.group(3)), "largest_free": int(blocks.group(2)) * BLOCK_BYTES}
    layout = _LAYOUT_LINE.search(text)
    if layout:
        info["heap_start"] = int(layout.group(1), 16)
        info["map"] = block_map(text[layout.end():])
    return info


def block_map(text):
    """mem_info(1)'s block map as one string, a character a block ("." free), from the heap's
    start: lines "OFFSET: <up to 64 blocks>", runs of free lines as "(N lines all free)"."""
    blocks = []
    for line in text.splitlines():
        line = line.strip()
        lines_free = _FREE_LINES.fullmatch(line)
        if lines_free:
            blocks.append("." * 64 * int(lines_free.group(1)))
        elif _MAP_LINE.match(line):
            offset, row = line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
            start = int(offset, 16) // BLOCK_BYTES
            have = sum(len(b) for b in blocks)
            if start > have:  # a gap the printer skipped: free
                blocks.append("." * (start - have))
            blocks.append(row)
        elif line and blocks:
            break
    return "".join(blocks)


def region_figures(info, region_end, firmware_heap_bytes):
    """The firmware's share of one mem_info report: its region is the heap from its start to
    `region_end` (an address); the free blocks and the longest free run inside it are the
    firmware's, what else is in it is counted as the firmware's use."""
    blocks = -(-(region_end - info["heap_start"]) // BLOCK_BYTES)
    region = info["map"][:blocks]
    free = region.count(".") * BLOCK_BYTES
    longest = max((len(run) for run in _FREE_RUN.findall(region)), default=0) * BLOCK_BYTES
    return {"used": firmware_heap_bytes - free, "free": free, "largest_free": longest}


def ok(result):
    """Booted and ran the workload to its end with no MemoryError anywhere."""
    memory = [e for e in result["firmware_errors"] if e and "MemoryError" in e]
    return (result["failed"] is None and result["halted"] is None
            and "after_workload" in result["reports"] and not memory
            and "OUT_OF_MEMORY" not in result["faults"])


def booted(result):
    return "after_boot" in result["reports"] and not (
        result["failed"] and "MemoryError" in result["failed"])


def _path(form):
    """The module search path of a probe: the .mpy form has lib/ ahead of the frozen modules, so
    that its files are the ones imported."""
    return ["lib", ".frozen"] if form == "mpy" else [".frozen"]


def gc_total(heapsize, interpreter=None):
    """(GC total, bytes in use) of the interpreter alone at `-X heapsize=heapsize`."""
    proc = vdevice.run(vdevice.command(
        None, script=("-c", "import gc; gc.collect(); print(gc.mem_alloc() + gc.mem_free(), "
                            "gc.mem_alloc())"),
        heap=heapsize, chip=True, path=(), interpreter=interpreter), timeout_s=60)
    if proc.returncode != 0:
        raise RuntimeError("the interpreter alone failed (exit %d): %s"
                           % (proc.returncode, proc.stderr[-500:]))
    total, used = proc.stdout.split()
    return int(total), int(used)


def firmware_heap(result, bare):
    """The heap the firmware had in a run: its region less this probe's script (what the bare
    interpreter holds is in it, as on the chip)."""
    sim = result["sim"]
    return sim["firmware_region"] - (sim["start"] - bare)


# What the simulator and the probe's script hold in the heap beside the firmware, per form, as
# the last run found it: the next search starts from there (one run, mostly, instead of three).
_NOT_THE_FIRMWARES = {}


def heapsize_for(image, form, target, bare, until_s=UNTIL_S):
    """The -X heapsize (a multiple of 16) that gives the firmware `target` bytes, at least, and
    the run's result."""
    overhead = _NOT_THE_FIRMWARES.get(form, 42 * 1024)
    heapsize = (target + overhead) * ESP32_HEAP // 56000 // 16 * 16
    for _ in range(8):
        result = run(image, form, heapsize, until_s=until_s)
        if "sim" not in result:
            raise RuntimeError("the probe did not start at -X heapsize=%d: %s"
                               % (heapsize, result["failed"]))
        short = target - firmware_heap(result, bare)
        _NOT_THE_FIRMWARES[form] = result["sim"]["total"] - firmware_heap(result, bare)
        if 0 <= -short < 64:
            return heapsize, result
        heapsize += (short * ESP32_HEAP // 56000 + 15) // 16 * 16
    raise RuntimeError("no heap size gives the firmware %d bytes" % target)


def smallest_heap(image, form, test, bare, low, high, step=256, until_s=UNTIL_S):
    """The smallest firmware heap (within `step` bytes) for which test(result) holds, `low`
    known to fail and `high` to pass (checked)."""
    if not test(heapsize_for(image, form, high, bare, until_s)[1]):
        raise RuntimeError("does not pass even with a %d-byte heap" % high)
    while high - low > step:
        middle = (low + high) // 2 // 16 * 16
        if test(heapsize_for(image, form, middle, bare, until_s)[1]):
            high = middle
        else:
            low = middle
    return high


def measure(form, find_smallest=True, step=256):
    """The figures for one form of the firmware, in a heap that gives it the ESP32's 56,000 bytes
    (the simulator's and this probe's shares on top); with `find_smallest`, the smallest heaps
    (within `step` bytes) that boot it and that run the workload."""
    bare = gc_total(ESP32_HEAP)[1]  # what the interpreter itself holds before any script
    with tempfile.TemporaryDirectory(prefix="heap-probe-") as tmp:
        image = Path(tmp) / "image"
        make_image(image, form)
        heapsize, result = heapsize_for(image, form, 56000, bare)
        sim = result["sim"]
        overhead = sim["total"] - firmware_heap(result, bare)  # the simulator's and the probe's
        firmware = {}
        for name, figures in result["reports"].items():
            if "map" in figures:
                firmware[name] = region_figures(figures, sim["region_end"],
                                                firmware_heap(result, bare))
        out = {"form": form, "board": BOARD, "treatment": TREATMENT,
               "interpreter": paths.rel(paths.chip_executable()), "heapsize": heapsize,
               "firmware_heap": firmware_heap(result, bare), "not_the_firmware's": overhead,
               "ok": ok(result), "failed": result["failed"], "faults": result["faults"],
               "firmware_errors": result["firmware_errors"],
               "session_ends": result["session_ends"], "halted": result["halted"],
               "requests": REQUESTS, "replies": result["replies"],
               "thermal_levels": result["thermal_levels"],
               "status_lines": result["status_lines"], "journal_bytes": result["journal_bytes"],
               "final_state": result.get("final_state"),
               "mem_info": {name: {k: v for k, v in r.items() if k != "map"}
                            for name, r in result["reports"].items()},
               "firmware": firmware}
        if find_smallest:
            # What the firmware holds after boot is a floor; the ESP32's heap, a ceiling where it
            # ran there.
            low = firmware.get("after_boot", {}).get("used", 8192)
            high = 56000 if out["ok"] else SEARCH_CEILING
            out["smallest_heap_boot"] = smallest_heap(image, form, booted, bare, low,
                                                      high if booted(result) else SEARCH_CEILING,
                                                      step, BOOT_S)
            out["smallest_heap_workload"] = smallest_heap(
                image, form, ok, bare, max(low, out["smallest_heap_boot"] - step), high, step)
    return out


def firmware_alone(form="frozen"):
    """The firmware's tick in STANDBY and EMITTING and a collection's pause, host microseconds,
    at the ESP32's heap size with the firmware's objects and no simulator
    (host_tools/vdevice/mpy/firmware_alone.py)."""
    with tempfile.TemporaryDirectory(prefix="heap-probe-") as tmp:
        root = Path(tmp) / "device"
        make_image(root, form)
        command = vdevice.command(root, script="firmware_alone", heap=ESP32_HEAP, chip=True,
                                  path=_path(form))
        proc = vdevice.run(command, timeout_s=300)
        argv = command[0]
    for line in proc.stdout.splitlines():
        if line.startswith("PAUSE "):
            result = json.loads(line[len("PAUSE "):])
            result["mem_info"] = _mem_info(proc.stdout)
            result["argv"] = [paths.rel(a) for a in argv]
            return result
    raise RuntimeError("firmware_alone.py failed (exit %d):\n%s%s"
                       % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))




def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m host_tools.heap_probe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--form", choices=("frozen", "mpy"), default="frozen")
    parser.add_argument("--no-search", action="store_true",
                        help="only the run at -X heapsize=57344, no search for the smallest heap")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = measure(args.form, not args.no_search)
    if args.form == "frozen":  # the .mpy form does not boot in the ESP32's heap
        figures["firmware_alone"] = firmware_alone(args.form)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
