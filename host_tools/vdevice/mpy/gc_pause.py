# A collection's pause at the ESP32's heap size (`python -m host_tools.heap_probe` runs this on
# build/chip/micropython -X heapsize=57344, GC total 56,000 bytes, in a device image): the
# firmware's objects as app.assemble builds them (board, settings, journal, App, serial protocol)
# on a stand-in for the hardware that holds no more than a few inputs, no simulator; then
# gc.collect() and a quiet STANDBY tick timed on the host's clock. Prints "PAUSE <json>".
import gc
import json
import sys

import micropython
import utime

sys.path.pop(0)  # this folder holds the simulated machine's sources: not wanted here
sys.modules["time"] = utime  # the interpreter's clock, not the simulated one frozen beside it


class _Hardware:
    """What app.App asks of hw.Hardware, and nothing more: a key-off, cool, quiet device."""

    def sense(self, inp, now_ms):
        inp.t_ms = now_ms
        inp.interlock_closed = True
        inp.estop_pressed = False
        samples = inp.thermistor_samples
        for i in range(len(samples)):
            samples[i] = 1650000 + i * 1000  # about 25 C, a live sensor's spread

    def actuate(self, out):
        return utime.ticks_ms()

    def safe_off(self):
        return None

    def check_shutdown_path(self):
        return None

    def maintenance_button_held(self):
        return False

    def read_serial_byte(self):
        return -1

    def restart(self):
        pass


def _timed(fn, count):
    times = []
    for _ in range(count):
        t0 = utime.ticks_us()
        fn()
        times.append(utime.ticks_diff(utime.ticks_us(), t0))
    times.sort()
    return {"min_us": times[0], "median_us": times[len(times) // 2], "max_us": times[-1],
            "count": count}


import app  # noqa: E402
import board as board_file  # noqa: E402

board = board_file.load("board.json")
application, notes = app.assemble(_Hardware(), board)
application.self_test(utime.ticks_ms())
application.logbook.boot(application, "RESET", notes)
gc.collect()
micropython.mem_info()
now = [utime.ticks_ms()]


def _tick():
    now[0] = utime.ticks_add(now[0], 10)
    application.step(now[0])


for _ in range(300):  # past the first status lines and the loop's first collections
    _tick()
gc.collect()
print("PAUSE " + json.dumps({"collect": _timed(gc.collect, 50),
                             "standby_tick": _timed(_tick, 200),
                             "used": gc.mem_alloc(), "free": gc.mem_free()}))
