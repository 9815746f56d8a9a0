# The device half of `laserctl bench`, run by the real MicroPython unix port with the device image
# as the current directory and MICROPYPATH = the sim directory, .frozen, lib (host_tools/bench.py
# starts it). It builds the virtual device's world as vdev.py does, then the firmware's Hardware
# and App as startup.main() does, drives them to a steady state in virtual time and measures the
# control tick there, and each of its stages: the App's own tuple of them (App.STAGES), which
# App.tick runs. Everything it measured goes out as one line "BENCH-RESULT <json>" at the end;
# any other line on stdout is the firmware's own output.
#
# Two clocks: `time` is the simulated clock the firmware sees (virtual time); every duration below
# is taken with `utime.ticks_us`, the interpreter's built-in real clock. While a measurement runs
# the world's clock stands still (the plant is not integrated, so the simulator's own work stays
# out of the figures) and the firmware's now_ms advances by loop_ms per tick; the world catches up
# after each block.
#
# Allocation: gc.mem_alloc() read around each tick (and each stage of a tick) with the collector
# disabled; between ticks, outside the window, the heap is collected when it runs low. The figures
# are whole GC blocks (32 bytes on the 64-bit unix port, 16 on the ESP32 and the chip interpreter).
#
# BENCH_CONFIG may also ask for: "states", the steady states to measure (default both, STANDBY
# and EMITTING); "alloc_only", the firmware's bytes alone; "heatsink_c", the plant's temperature
# when the world begins; "warning_within_s", to wait in EMITTING for the thermal warning (a warm
# room) and measure from its first burst.
import gc

gc.collect()
_HEAP_START = gc.mem_alloc()
# sim_plant imports this firmware module for its own plant model: import it first, so that its
# share of the heap is counted as the firmware's and not the simulator's.
import calibration  # noqa: E402, F401

gc.collect()
_HEAP_CALIBRATION = gc.mem_alloc() - _HEAP_START

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import repl_uart  # noqa: E402 - the simulated serial port's output
import simworld  # noqa: E402
import utime  # noqa: E402 - the built-in real clock

simworld.install()
import machine  # noqa: E402, I001 - the simulated machine
import time  # noqa: E402 - the simulated clock

_TICKS_MASK = (1 << 30) - 1  # the firmware's ticks wrap at 2**30, as on the ESP32
_RESERVE = 32 * 1024  # collect between ticks when less than this is free (a tick takes < 2 KB)

with open(os.getenv("BENCH_CONFIG")) as f:
    CONFIG = json.load(f)
with open("board.json") as f:
    world = simworld.World(CONFIG["sim"], json.load(f))
simworld.WORLD = world
world.drop_trace()  # the bench reads none of it; kept, it would fill the heap as the ticks run
repl_uart.install()  # the firmware's sys.stdout: the REPL UART, as vdev.py gives it
if "heatsink_c" in CONFIG:
    world.plant.heatsink_c = world.plant.junction_c = float(CONFIG["heatsink_c"])

# -- boot: the firmware's own share of the heap ---------------------------------------------------

heap = {"calibration_module": _HEAP_CALIBRATION, "modules": 0, "board": 0, "hardware": 0,
        "treatment": 0, "app": 0, "total": 0, "one_simulated_pin": 0}  # no growth while measuring
BOARD = HARDWARE = TREATMENT = APP = None
_mark = 0


def _heap_step(name):
    global _mark
    gc.collect()
    now = gc.mem_alloc()
    if name is not None:
        heap[name] = now - _mark
    _mark = now


_heap_step(None)
import board as board_file  # noqa: E402
import hw  # noqa: E402
import startup  # noqa: E402 - the boot's code, and the loop's modules it imports (app, ...)

_heap_step("modules")
BOARD = board_file.load("board.json")
_heap_step("board")
HARDWARE = hw.Hardware(BOARD)
_heap_step("hardware")
TREATMENT = startup.load_treatment("treatment.json", BOARD)
_heap_step("treatment")
del TREATMENT  # measured alone; assemble() loads its own, as startup.main() does
APP, _ = startup.assemble(HARDWARE, BOARD)  # with the settings, the journal, the serial link
APP.self_test(time.ticks_ms())
_heap_step("app")
# The tick's stages, as App.tick runs them: App.STAGES, named by their functions.
_STAGES = tuple(stage.__name__.lstrip("_") for stage in APP.STAGES)
heap["total"] = (heap["calibration_module"] + heap["modules"] + heap["board"] + heap["hardware"]
                 + heap["treatment"] + heap["app"])


def _simulated_pin_bytes():
    gc.collect()
    a = gc.mem_alloc()
    pin = machine.Pin(35, machine.Pin.IN)  # an unused input-only pin: changes nothing
    gc.collect()
    return gc.mem_alloc() - a if pin else 0


heap["one_simulated_pin"] = _simulated_pin_bytes()

if CONFIG.get("heap_only"):
    print("BENCH-RESULT " + json.dumps({"heap": heap}))
    sys.exit(0)

from alarms import PRIORITY_NAMES  # noqa: E402
from controller import EMITTING, STANDBY, STATE_NAMES  # noqa: E402
from thermal import LEVEL_NAMES, NORMAL  # noqa: E402

PERIOD = APP.period_ms
TICKS = CONFIG["ticks"]
REPEATS = CONFIG["repeats"]


class _Empty:
    """The empty-loop reference: the same loop, calling a method that does nothing."""

    def tick(self, now_ms):
        pass

    @staticmethod
    def nothing():
        pass


def _run_virtual(ms):
    """Run the loop as App.run does, in virtual time, for `ms` (setting up a state)."""
    for _ in range(ms // PERIOD):
        APP.tick(time.ticks_ms())
        world.sleep_us(PERIOD * 1000)


def _catch_up(n):
    """After a block of n ticks at a standing world clock, let the world's time follow."""
    world.sleep_us(n * PERIOD * 1000)
    return time.ticks_ms()


def _status_tick(now):
    # The recorder prints a status line every status period; it notes when it last did.
    return getattr(APP.recorder, "_last_status_ms", None) == now


def _time_block(target, n, now):
    t0 = utime.ticks_us()
    for _ in range(n):
        target.tick(now)
        now = (now + PERIOD) & _TICKS_MASK
    return utime.ticks_diff(utime.ticks_us(), t0)


def _timing(n):
    """Real µs of n ticks and of n empty-loop iterations, interleaved, GC enabled, as run."""
    empty = _Empty()
    tick_us, empty_us = [], []
    now = time.ticks_ms()
    for _ in range(REPEATS):
        gc.collect()
        empty_us.append(_time_block(empty, n, now))
        gc.collect()
        tick_us.append(_time_block(APP, n, now))
        now = _catch_up(n)
    return {"tick_block_us": tick_us, "empty_block_us": empty_us}


def _per_tick(n):
    """Bytes and µs of each app.tick(), GC disabled, as histograms {value: ticks}, apart for quiet
    ticks and ticks that printed a status line (histograms keep the heap flat for any n)."""
    hist = {"quiet": {"bytes": {}, "us": {}}, "status": {"bytes": {}, "us": {}}}
    now = time.ticks_ms()
    # The loop's own collections (app.App._collect) would free what this counts: none here.
    collect, APP.collect_garbage = APP.collect_garbage, _Empty.nothing
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            if gc.mem_free() < _RESERVE:
                gc.collect()
            a = gc.mem_alloc()
            t = utime.ticks_us()
            APP.tick(now)
            t = utime.ticks_diff(utime.ticks_us(), t)
            d = gc.mem_alloc() - a
            h = hist["status" if _status_tick(now) else "quiet"]
            hb, hu = h["bytes"], h["us"]
            hb[d] = hb.get(d, 0) + 1
            hu[t] = hu.get(t, 0) + 1
            now = (now + PERIOD) & _TICKS_MASK
    finally:
        gc.enable()
        APP.collect_garbage = collect
    _catch_up(n)
    return hist


# The simulated machine's share: wrappers around the machine calls the hardware module makes count
# the bytes and µs spent inside them. Installed only for the attribution pass (they cost time).
_SIM = [0, 0]  # bytes, µs
_NO = object()
_ORIG = {}


def _simulated(key):
    """A stand-in for the simulated machine's method _ORIG[key], `(self)` or `(self, v)`, whose
    bytes and us are counted apart (no *args: the tuple would be counted as the firmware's)."""

    def call(self, v=_NO):
        a = gc.mem_alloc()
        t = utime.ticks_us()
        r = _ORIG[key](self) if v is _NO else _ORIG[key](self, v)
        _SIM[1] += utime.ticks_diff(utime.ticks_us(), t)
        _SIM[0] += gc.mem_alloc() - a
        return r

    return call


def _simulated_write(self, buf, off, n):
    """The same for the simulated UART's write (three arguments)."""
    a = gc.mem_alloc()
    t = utime.ticks_us()
    r = _ORIG["uart_write"](self, buf, off, n)
    _SIM[1] += utime.ticks_diff(utime.ticks_us(), t)
    _SIM[0] += gc.mem_alloc() - a
    return r


_WRAPPED = {"pin_value": _simulated("pin_value"), "pwm_duty_u16": _simulated("pwm_duty_u16"),
            "adc_read_uv": _simulated("adc_read_uv"), "counter_value": _simulated("counter_value"),
            "uart_write": _simulated_write}


def _wrap_machine(on):
    if not _ORIG:
        _ORIG["pin_value"] = machine.Pin.value
        _ORIG["pwm_duty_u16"] = machine.PWM.duty_u16
        _ORIG["adc_read_uv"] = machine.ADC.read_uv
        _ORIG["counter_value"] = machine.Counter.value
        _ORIG["uart_write"] = repl_uart.ReplUart.write
    table = _WRAPPED if on else _ORIG
    machine.Pin.value = table["pin_value"]
    machine.PWM.duty_u16 = table["pwm_duty_u16"]
    machine.ADC.read_uv = table["adc_read_uv"]
    machine.Counter.value = table["counter_value"]
    repl_uart.ReplUart.write = table["uart_write"]  # hw writes through sys.stdout: found anew
    hw_ = APP.hw
    if hasattr(hw_, "_read_uv"):  # the hardware module binds read_uv once: rebind it
        hw_._read_uv = hw_._adc.read_uv
    if getattr(hw_, "_read_edges", None) is not None:  # and the pulse counter's value
        hw_._read_edges = hw_._edge_counter.value
    if getattr(hw_, "_read_monitor_uv", None) is not None:
        hw_._read_monitor_uv = hw_._monitor_adc.read_uv


def _per_stage(n):
    """App.tick stage by stage (App.STAGES: what App.tick runs, in its order), GC disabled:
    bytes and µs of each stage, and the simulated machine's bytes and µs inside it, summed
    separately over quiet ticks and ticks that printed a status line. The host checks the
    stages' sum against app.tick() itself."""
    stages, app = APP.STAGES, APP
    k = len(stages)
    tick_b, tick_u, tick_sb, tick_su = [0] * k, [0] * k, [0] * k, [0] * k
    sums = {}
    for kind in ("quiet", "status"):
        sums[kind] = {"ticks": 0, "bytes": [0] * k, "us": [0] * k, "sim_bytes": [0] * k,
                      "sim_us": [0] * k, "min_bytes": [None] * k, "max_bytes": [None] * k}
    now = time.ticks_ms()
    # The loop's own collections (its bookkeeping stage) would free what this counts: none here.
    collect, app.collect_garbage = app.collect_garbage, _Empty.nothing
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            if gc.mem_free() < _RESERVE:
                gc.collect()
            for s in range(k):
                stage = stages[s]
                sb, su = _SIM[0], _SIM[1]
                a = gc.mem_alloc()
                t = utime.ticks_us()
                stage(app, now)
                t = utime.ticks_diff(utime.ticks_us(), t)
                tick_b[s] = gc.mem_alloc() - a
                tick_u[s] = t
                tick_sb[s] = _SIM[0] - sb
                tick_su[s] = _SIM[1] - su
            acc = sums["status" if _status_tick(now) else "quiet"]
            acc["ticks"] += 1
            b, u, sbytes, sus = acc["bytes"], acc["us"], acc["sim_bytes"], acc["sim_us"]
            lo, hi = acc["min_bytes"], acc["max_bytes"]
            for s in range(k):
                d = tick_b[s]
                b[s] += d
                u[s] += tick_u[s]
                sbytes[s] += tick_sb[s]
                sus[s] += tick_su[s]
                if lo[s] is None or d < lo[s]:
                    lo[s] = d
                if hi[s] is None or d > hi[s]:
                    hi[s] = d
            now = (now + PERIOD) & _TICKS_MASK
    finally:
        gc.enable()
        app.collect_garbage = collect
    _catch_up(n)
    return sums


def _probe(fn, calls=20):
    """Bytes per call of fn() (min, max over `calls` calls), or the error it raised."""
    lo = hi = None
    gc.collect()
    gc.disable()
    try:
        for _ in range(calls):
            a = gc.mem_alloc()
            fn()
            d = gc.mem_alloc() - a
            lo = d if lo is None or d < lo else lo
            hi = d if hi is None or d > hi else hi
    except Exception as e:  # noqa: BLE001 - a probe that no longer fits the firmware is reported
        return {"error": "%s: %s" % (type(e).__name__, e)}
    finally:
        gc.enable()
    return {"min": lo, "max": hi}


def _probes():
    """What allocates inside a quiet tick: the calls a quiet tick makes, one at a time, in the
    steady state (each leaves the state as it found it). Machine calls run the simulator."""
    app = APP
    hw_, ctl, sup, dos, rec = app.hw, app.controller, app.supervisor, app.dosimeter, app.recorder
    cmds, book = app.commands, app.logbook
    inp, out = app.inputs, app.outputs
    now = inp.t_ms
    quiet_ms = getattr(rec, "_last_status_ms", now)  # no status line is due at its own time
    monitor = getattr(ctl, "thermal", None)
    therm = getattr(monitor, "sensor", None)
    samples = inp.thermistor_samples
    key = getattr(hw_, "_key", None)
    adc = getattr(hw_, "_adc", None)
    enable = getattr(hw_, "_enable", None)
    probes = (
        ("machine: Pin.value() read (simulated)", lambda: key.pin.value()),
        ("machine: Pin.value(v) write (simulated)", lambda: enable.value(out.laser_enable)),
        ("machine: ADC.read_uv() (simulated)", lambda: adc.read_uv()),
        ("hw: one _Input.read()", lambda: key.read()),
        ("hw: Hardware.sense()", lambda: hw_.sense(inp, now)),
        ("hw: Hardware.actuate()", lambda: hw_.actuate(out)),
        ("thermal: Thermistor.check(uv)", lambda: therm.check(monitor.uv)),
        ("thermal: Thermistor.temp_mc(uv)", lambda: therm.temp_mc(monitor.uv)),
        ("thermal: ThermalMonitor.update()",
         lambda: monitor.update(samples, now, 0)),
        ("controller: Footswitch.read()", lambda: ctl.footswitch.read(
            inp.footswitch_no_closed, inp.footswitch_nc_closed, now)),
        ("controller: Controller._fault_cause(inp)", lambda: ctl._fault_cause(inp, None)),
        ("controller: Controller.drive(out, now)", lambda: ctl.drive(out, now)),
        ("controller: Controller._dose_reached()", lambda: ctl._dose_reached(dos)),
        ("controller: Controller.step()", lambda: ctl.step(inp, dos, out)),
        ("supervisor: Supervisor.veto()", lambda: sup.veto(inp, out, False)),
        ("dosimeter: Dosimeter.account(now)", lambda: dos.account(now)),
        ("recorder: Recorder.record() (no line due)", lambda: rec.record(quiet_ms, app)),
        ("hw: Hardware.read_serial_byte() (nothing waiting)", lambda: hw_.read_serial_byte()),
        ("commands: Commands.poll() (no request)", lambda: cmds.poll(now)),
        ("commands: Commands.finish() (no command)", lambda: cmds.finish(now)),
        ("logbook: Logbook.record() (nothing to journal)", lambda: book.record(app)),
        ("link: Outbox.drain() (what the FIFO takes)", lambda: app.outbox.drain()),
        ("time: ticks_diff() (simulated)", lambda: time.ticks_diff(now, quiet_ms)),
    )
    result = []
    for name, fn in probes:
        r = _probe(fn)
        r["call"] = name
        result.append(r)
    APP.tick(now)  # re-apply one whole tick: outputs as the loop leaves them
    return result


def _check_state(want):
    state = APP.controller.state
    if state != want:
        raise SystemExit("bench: the firmware left %s for %s (fault %r, refusal %r); --ticks too "
                         "large for the bench treatment?" % (
                             STATE_NAMES[want], STATE_NAMES[state],
                             APP.controller.fault_code, APP.controller.refusal))


def _attributed(n):
    """_per_stage with the simulated machine's calls counted apart: each stage's bytes and, in
    the same ticks, the simulated machine's share of them."""
    _wrap_machine(True)
    try:
        return _per_stage(n)
    finally:
        _wrap_machine(False)


def _measure(want):
    _run_virtual(20 * PERIOD)  # a few plain ticks first: first-time work is not steady state
    _check_state(want)
    if CONFIG.get("alloc_only"):
        # Only what the firmware allocates, in the ticks right after the state began (a warning's
        # first burst, say): the attributed pass alone, where each tick's simulated share is
        # counted in the same tick.
        r = {"sim": _attributed(TICKS)}
    else:
        r = {"timing": _timing(TICKS)}
        _check_state(want)
        r["per_tick"] = _per_tick(TICKS)
        _check_state(want)
        r["stages"] = _per_stage(TICKS)
        _check_state(want)
        r["sim"] = _attributed(TICKS)
    _check_state(want)
    r["probes"] = _probes()
    _check_state(want)
    r["laser_enable"] = APP.outputs.laser_enable
    r["state"] = STATE_NAMES[APP.controller.state]
    r["thermal"] = LEVEL_NAMES[APP.controller.thermal.level]
    r["alarm"] = PRIORITY_NAMES[APP.controller.alarm]
    return r


# -- the steady states ----------------------------------------------------------------------------

timing = BOARD["timing"]
wanted = CONFIG.get("states", ("STANDBY", "EMITTING"))
results = {}
# STANDBY, idle: key on, interlock closed, nothing pressed.
world.set_input("key", True)
_run_virtual(500)
if "STANDBY" in wanted:
    results["STANDBY"] = _measure(STANDBY)
# EMITTING: arm (press and release), wait out the emission delay, then hold the footswitch.
world.set_input("arm", True)
_run_virtual(5 * PERIOD)
world.set_input("arm", False)
_run_virtual(timing["emission_delay_ms"] + 10 * PERIOD)
world.set_input("footswitch", True)
_run_virtual(10 * PERIOD)
if "warning_within_s" in CONFIG:
    for _ in range(CONFIG["warning_within_s"] * 1000 // PERIOD):
        if APP.controller.thermal.level != NORMAL:
            break
        _run_virtual(PERIOD)
    else:
        raise SystemExit("bench: no thermal warning within %d s" % CONFIG["warning_within_s"])
if "EMITTING" in wanted:
    results["EMITTING"] = _measure(EMITTING)
    if not results["EMITTING"]["laser_enable"]:
        raise SystemExit("bench: EMITTING without the laser enabled: the supervisor vetoed it")

APP.outbox.flush()  # the firmware's last line whole: the result starts a line of its own
sys.stdout.write("BENCH-RESULT ")
json.dump({
    "heap": heap, "states": results, "stages": _STAGES, "ticks": TICKS, "repeats": REPEATS,
    "loop_ms": PERIOD, "status_period_ms": timing["status_period_ms"],
    "interpreter": {"version": sys.version, "implementation": [
        sys.implementation.name, list(sys.implementation.version)],
        "machine": getattr(sys.implementation, "_machine", ""), "platform": sys.platform,
        "maxsize": sys.maxsize},
    "virtual_s": world.origin_s + world.now_us / 1e6,
}, sys.stdout)
sys.stdout.write("\n")
