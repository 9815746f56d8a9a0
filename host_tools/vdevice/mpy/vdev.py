# The virtual device's power switch, run by the real MicroPython interpreter with the device's
# filesystem as the current directory: builds the world from $VDEV_CONFIG, then does what the
# ESP32 does after a reset (boot.py, then main.py), again after every soft or hard reset. In
# scenario mode it writes the world's trace to the config's trace_path when the scenario ends.
import json
import os
import sys

import simworld
from simworld import HardReset, SimEnd, SoftReset

_SIM_MODULES = ("simworld", "machine", "time", "calibration")


def _forget_firmware_modules():
    # A reset clears every imported module on the chip; the world itself survives.
    for name in list(sys.modules):
        if name not in _SIM_MODULES and name not in ("json", "os", "sys", "math"):
            del sys.modules[name]


def _run_file(name):
    try:
        with open(name) as f:
            source = f.read()
    except OSError:
        return
    exec(compile(source, name, "exec"), {"__name__": "__main__"})


def _boot(run_main):
    while True:
        try:
            _forget_firmware_modules()
            _run_file("boot.py")
            if run_main:
                _run_file("main.py")
            return
        except SoftReset:
            world.reset_pins("soft reset")
            print("MPY: soft reboot")
        except HardReset as e:
            print("virtual device: hard reset (%s)" % e)


def _write_trace():
    path = config.get("trace_path")
    if path:
        with open(path, "w") as f:
            json.dump(world.result(), f)


with open(os.getenv("VDEV_CONFIG")) as f:
    config = json.load(f)
with open("board.json") as f:
    world = simworld.World(config, json.load(f))
simworld.WORLD = world

try:
    _boot(config.get("run_main", True))
    if world.until_us is not None:
        world.sleep_us(world.until_us)  # main.py ended early: time still passes until the end
except SimEnd:
    pass
except KeyboardInterrupt:
    # As on the board: Ctrl-C stops main.py and leaves the REPL (the interpreter runs with -i).
    print("KeyboardInterrupt")
finally:
    _write_trace()
