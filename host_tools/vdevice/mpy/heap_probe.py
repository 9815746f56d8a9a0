# The device half of `python -m host_tools.heap_probe`: the firmware's real boot (boot.py, then
# main.py, on hw.py over the simulated machine) and a scenario's workload, with the GC heap read by
# micropython.mem_info() at two points: after boot (just before the loop starts) and after the
# workload (once the scenario has ended, the App still alive). Run with the device image as the
# current directory and $PROBE_CONFIG naming {"sim": world config, "world_board": board dict}.
#
# The heap is split in two, so that the firmware sees what it would see on the chip: one
# contiguous region at the bottom for it, and the simulator above. A ballast holds the bottom
# while the simulator is built; every hole left among the simulator's objects is then plugged
# with one-block tuples, and the ballast freed. The firmware's region ("PROBE-SIM": its size,
# `firmware_region`, and the address it ends at, `region_end`) starts with what the interpreter
# and this script hold; the host reads its free blocks off mem_info's block map; it sizes the
# heap so that the region is the ESP32's 56,000 bytes plus this script's share. While the loop
# runs, the simulator's garbage and the objects it replaces its old ones with (its state's floats)
# fall in the firmware's region too: collected, its garbage leaves no trace; what it keeps there
# counts against the firmware (a few hundred bytes: the figures err on the safe side), and the
# holes its old objects leave among its own are not the firmware's free space.
#
# Every report is a line "PROBE <name>" followed by mem_info()'s lines and "PROBE-END";
# "PROBE-FAILED <text>" says why the run did not finish. (A collection's pause is timed without
# the simulator: firmware_alone.py.) The firmware's own
# JSON lines come in between, as it writes them.
import gc
import json
import os
import sys

import micropython
import uctypes

# The interpreter put this script's folder first on the path: it holds the simulated machine's
# sources, which would be compiled into the heap instead of imported frozen.
sys.path.pop(0)
gc.collect()
_START = gc.mem_alloc()  # the interpreter and this script
import calibration  # noqa: E402, F401 - simworld imports this firmware module: the firmware's

gc.collect()
_LOW = gc.mem_alloc()
_ballast = bytearray(gc.mem_free() - 40 * 1024)  # room above it to build the simulator in
_REGION_END = uctypes.addressof(_ballast) + len(_ballast)  # the firmware's region ends here
import repl_uart  # noqa: E402 - the simulated serial port's output
import simworld  # noqa: E402

# The simulated machine and clock, as `machine` and `time` for the firmware (frozen on the chip:
# their code takes no heap).
simworld.install()


with open(os.getenv("PROBE_CONFIG")) as f:
    _config = json.load(f)
world = simworld.World(_config["sim"], _config["world_board"])
simworld.WORLD = world
repl_uart.install()  # the firmware's sys.stdout: the REPL UART, as vdev.py gives it
world.config = world.board = _config = None  # read at construction only (and by snapshot())
world.drop_trace()
gc.collect()
_plug = None
try:
    while True:
        _plug = (_plug,)
except MemoryError:
    pass
_ballast = None
gc.collect()
print("PROBE-SIM " + json.dumps({"start": _START, "low": _LOW, "region_end": _REGION_END,
                                 "firmware_region": _LOW + gc.mem_free(),
                                 "total": gc.mem_alloc() + gc.mem_free()}))

APPS = []


def report(name):
    gc.collect()
    print("PROBE " + name)
    micropython.mem_info(1)  # with the heap's block map: the host reads the firmware's region
    print("PROBE-END")


def _measured_run(self):
    APPS.append(self)
    report("after_boot")
    _RUN(self)


def _run_file(name):
    # As the board's script runner does (pyexec_file): the file compiled into the heap, then run.
    with open(name) as f:
        source = f.read()
    code = compile(source, name, "exec")
    source = None
    exec(code, {"__name__": "__main__"})


def _boot():
    """boot.py, then main.py, the loop measured as it starts, once the boot (startup.py) has
    returned the App and been dropped (main.py imports startup, which imports app: app is
    imported first here, as that would, to hook the start of its loop)."""
    global _RUN
    _run_file("boot.py")
    gc.collect()  # the simulator's garbage from it, which the chip's native pins do not make
    import app

    _RUN = app.App.run
    app.App.run = _measured_run
    _run_file("main.py")


try:
    _boot()
    print("PROBE-FAILED main.py returned (a maintenance boot?)")
except simworld.SimEnd:
    pass
except simworld.HardReset as e:
    print("PROBE-FAILED a reset: %s" % e)
except MemoryError as e:
    print("PROBE-FAILED MemoryError: %s" % e)
if APPS:
    state = APPS[0].controller.state
    report("after_workload")
    print("PROBE-STATE %d" % state)
sys.exit(0)
