# The firmware alone on the chip-shaped interpreter, timed: a collection's pause and the tick in
# STANDBY and in EMITTING, in the ESP32's heap (`python -m host_tools.heap_probe` and
# `laserctl bench` run this on build/chip/micropython -X heapsize=57344, GC total 56,000 bytes,
# in a device image). The firmware's objects are built as startup.assemble builds them (board,
# settings, journal, App, serial protocol) over a stand-in for the hardware that is a few
# attributes, no simulator: what is timed is the firmware's own work, on the host's clock.
# Prints "PAUSE <json>" (µs: min, median, max over the timed calls of the least disturbed of five
# blocks; `..._state`: the state a block of ticks was timed in, and ended in).
#
# The operator panel draws as on the chip: micropython-lib's ssd1306 driver and framebuf, over a
# stand-in I2C bus that takes every transaction at once and counts its bits. The bus time those
# bits take at 400 kHz is not the host's to measure: it is computed (`i2c`) and added to the
# ESP32 estimate by host_tools/bench_chip.py.
import gc
import json
import sys

import micropython
import utime

sys.path.pop(0)  # this folder holds the simulated machine's sources: not wanted here
sys.modules["time"] = utime  # the interpreter's clock, not the simulated one frozen beside it


_I2C_HZ = 400000


class _Bus:
    """An I2C controller whose every write is acknowledged at once; it counts the bits a real
    bus would clock: a start, the address byte and each data byte with its acknowledge (9 bits),
    a stop."""

    def __init__(self):
        self.bits = 0

    def writeto(self, addr, buf, stop=True):
        self.bits += 2 + 9 * (1 + len(buf))
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        n = 0
        for buf in vector:
            n += len(buf)
        self.bits += 2 + 9 * (1 + n)
        return n


class _Hardware:
    """What the firmware asks of hw.Hardware (startup.HARDWARE), and nothing more: a cool
    heatsink read by a live sensor, the key, the arm button and the pedal as this script sets
    them, the laser's enable line reading back what was commanded."""

    key_on = False
    arm = False
    footswitch = False

    rtc_memory_free = 4

    def __init__(self, board):
        self.enabled = False
        self.now_ms = 0
        self.noise = 0
        self.rtc_memory = bytearray(64)
        self.bus = _Bus()
        self.display = None
        self.display_problem = None
        if "panel" in board:
            import ssd1306

            self.display = ssd1306.SSD1306_I2C(128, 64, self.bus)

    def sense(self, inp, now_ms):
        self.now_ms = now_ms
        inp.t_ms = now_ms
        inp.key_on = self.key_on
        inp.interlock_closed = True
        inp.estop_pressed = False
        inp.footswitch_no_closed = self.footswitch
        inp.footswitch_nc_closed = not self.footswitch
        inp.arm_pressed = self.arm
        inp.reset_pressed = inp.ack_pressed = False
        self.noise = (self.noise + 1) % 7
        samples = inp.thermistor_samples
        for i in range(len(samples)):
            samples[i] = 1650000 + i * 1000 + self.noise * 200  # about 25 C, a live sensor
        inp.enable_sensed = self.enabled
        inp.enable_edges = 0

    def actuate(self, out):
        self.enabled = out.laser_enable
        return self.now_ms

    def safe_off(self):
        self.enabled = False

    def check_shutdown_path(self):
        return None

    def start_watchdog(self, timeout_ms):
        pass

    def feed_watchdog(self):
        pass

    def maintenance_button_held(self):
        return False

    def read_serial_byte(self):
        return -1

    def write_serial(self, buf, off, n, wait=False):
        return n  # a port that takes everything at once: the UART's cost is not this figure's

    def wall_clock_s(self):
        return None  # never set: the journal's records say so

    def set_wall_clock(self, utc_s):
        pass

    def restore_wall_clock(self):
        return None

    def keep_rtc_memory(self):
        pass  # on the chip a copy of 64 bytes into RTC memory: packing them is timed, not that

    def restart(self):
        pass


def _timed(fn, count, repeats=5, kind=None):
    """`count` calls of fn timed one by one, `repeats` times over; the block with the lowest
    median is kept (the least disturbed by the rest of the host: it only ever adds time). With
    `kind` (called after each call: a name or None), also the median of each kind's calls."""
    best = None
    for _ in range(repeats):
        times, kinds = [], {}
        for _ in range(count):
            t0 = utime.ticks_us()
            fn()
            dt = utime.ticks_diff(utime.ticks_us(), t0)
            times.append(dt)
            name = kind() if kind else None
            if name:
                kinds.setdefault(name, []).append(dt)
        times.sort()
        if best is None or times[count // 2] < best[0][count // 2]:
            best = times, kinds
    times, kinds = best
    result = {"min_us": times[0], "median_us": times[count // 2], "max_us": times[-1],
              "count": count, "repeats": repeats}
    for name in kinds:
        values = sorted(kinds[name])
        result[name + "_median_us"] = values[len(values) // 2]
        result[name + "_count"] = len(values)
    return result


import board as board_file  # noqa: E402
import heap  # noqa: E402
import startup  # noqa: E402
from controller import STATE_NAMES  # noqa: E402

board = board_file.load("board.json")
hardware = _Hardware(board)
application, notes = startup.assemble(hardware, board)
startup = None  # as on the device, the loop runs without the boot's code (startup.main)
heap.forget("startup")
application.self_test(utime.ticks_ms())
application.logbook.boot(application, "RESET", notes, utime.ticks_ms())
gc.collect()
micropython.mem_info()
now = [utime.ticks_ms()]


def _tick():
    now[0] = utime.ticks_add(now[0], application.period_ms)
    application.step(now[0])


def _ticks(count):
    for _ in range(count):
        _tick()


def _state():
    return STATE_NAMES[application.controller.state]


_bus_bits = [0, 0]  # the bus's count before the tick just timed; the most bits in one tick


_panel_row = [None]  # the panel's next row to compose, before the tick just timed


def _status_tick():
    """A tick that wrote a status line is of the kind "status_line"; else one that sent to the
    display, "panel_draw"; else one that composed a row of it, "panel_compose"."""
    bits = hardware.bus.bits - _bus_bits[0]
    _bus_bits[0] = hardware.bus.bits
    _bus_bits[1] = max(_bus_bits[1], bits)
    panel = application.panel
    row, _panel_row[0] = _panel_row[0], None if panel is None else panel._row
    if application.recorder._last_status_ms == now[0]:
        return "status_line"
    if bits:
        return "panel_draw"
    return "panel_compose" if panel is not None and row != panel._row else None


_ticks(300)  # past the first status lines and the loop's first collections
gc.collect()
result = {"collect": _timed(gc.collect, 50), "standby_tick": _timed(_tick, 200, 5, _status_tick),
          "standby_state": _state()}
# A treatment: key on, arm, the emission delay, the pedal; then the light's ticks, timed.
hardware.key_on = True
_ticks(5)
hardware.arm = True
_ticks(2)
hardware.arm = False
_ticks(board["timing"]["emission_delay_ms"] // application.period_ms + 5)
hardware.footswitch = True
_ticks(10)  # past the pedal's debounce
_bus_bits[0], _bus_bits[1] = hardware.bus.bits, 0
bits_before = hardware.bus.bits
result["emitting_tick"] = _timed(_tick, 200, 5, _status_tick)  # 1000 ticks
result["emitting_state"] = _state()
# Computed, not measured: the bits the panel sent, at the bus's clock rate.
result["i2c"] = {"hz": _I2C_HZ, "panel": hardware.display is not None,
                 "max_tick_us": _bus_bits[1] * 1000000 // _I2C_HZ,
                 "mean_tick_us": (hardware.bus.bits - bits_before) * 1000 // _I2C_HZ}
gc.collect()
result["collect_emitting"] = _timed(gc.collect, 50)
result["used"], result["free"] = gc.mem_alloc(), gc.mem_free()
print("PAUSE " + json.dumps(result))
