# Shared helpers for the firmware tests. These tests run unchanged on CPython (pytest) and on the
# MicroPython unix port (tests/firmware/mpy_runner.py): plain asserts, no pytest imports.
import json
import os

import board as board_file
import calibration as calibration_module
import treatment as treatment_module
from ticks import ticks_add, ticks_diff

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
REPO = _HERE + "/../.."


def scratch(name):
    """A path for a test's scratch file, in the folder of this test process ($LASER_TEST_TMP,
    set by tests/conftest.py and inherited by the MicroPython runs), else /tmp."""
    return (os.getenv("LASER_TEST_TMP") or "/tmp") + "/" + name


def load_board(name="sim"):
    """What board.load gives for boards/NAME.json (tests/firmware/test_board.py tests load itself).
    The text is read whole: json.load reads a file a byte at a time, a system call each, and the
    chip interpreter's 32-bit calls cost ten times the 64-bit port's here."""
    return board_file.validate(raw_board(name))


def raw_board(name="sim"):
    with open(REPO + "/boards/" + name + ".json") as f:
        return json.loads(f.read())


def calibration(board):
    return calibration_module.for_board(board)


def treatment(board, power_w=10.0, dose_j_cm2=8.0, area_cm2=100.0):
    spec = {"power_w": power_w, "dose_j_cm2": dose_j_cm2, "area_cm2": area_cm2}
    return treatment_module.for_board(spec, board)


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or something else."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def close(a, b, tol):
    return abs(a - b) <= tol


def _epsilon():
    eps = 1.0
    while 1.0 + eps / 2 != 1.0:
        eps /= 2
    return eps


# The interpreter's float: 2**-52 on CPython and the 64-bit unix port, 2**-23 on the chip
# interpreter (single precision, as on the ESP32).
EPSILON = _epsilon()


def heap_bytes(fn, *args):
    """Bytes the heap gains while fn(*args) runs, the collector held off; None on CPython, which
    has no such heap. On the chip interpreter the firmware is the frozen one, as in the image."""
    import gc

    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn(*args)
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def ulps(x, n):
    """n units in the last place of x in this interpreter's float (within a factor of two): the
    tolerance for a result that differs from exact arithmetic by its roundings alone."""
    return n * EPSILON * abs(x)


class FakeHardware:
    """Duck-typed stand-in for hw.Hardware (what startup.HARDWARE names): logical inputs in,
    applied outputs recorded. With a board, its power monitor's photodiode reads the light the
    outputs command (`light_factor` scales it: an aged or overdriven diode)."""

    def __init__(self, temp_uv=1650000, board=None):
        self.levels = {"key_on": False, "interlock_closed": True, "estop_pressed": False,
                       "footswitch_no_closed": False, "footswitch_nc_closed": True,
                       "arm_pressed": False, "reset_pressed": False, "ack_pressed": False,
                       "select_pressed": False, "back_pressed": False}
        self.display = None  # a fakedisplay.FakeDisplay gives the App its panel
        self.display_problem = None
        self.encoder_turns = 0  # detents turned before the next sense (clockwise > 0)
        self.thermistor_uv = temp_uv
        self.spread_uv = 1000  # samples spread around the value (the median stays the value)
        self.enable = False
        self.duty_u16 = 0
        self.led = False
        self.buzzer = False
        self.safe_off_calls = 0
        self.fail_next_sense = False
        self.sense_error = None  # an exception the next sense raises
        self.enable_stuck = False  # the enable line reads back high whatever is driven
        self.stray_light_w = 0.0  # light the photodiode sees whatever is commanded
        self.shutdown_path_problem = None  # what check_shutdown_path reports
        self.watchdog_ms = None  # started by App.run
        self.watchdog_feeds = 0
        self.monitor = board.get("power_monitor") if board else None
        self.calibration = calibration(board) if board else None
        self.light_factor = 1.0
        self.serial_in = b""  # bytes waiting on the serial port
        # The port's other way: what the firmware writes, handed line by line to on_line. With
        # serial_room_per_tick set, the port takes at most that many bytes a tick (unless the
        # firmware waits for it), as a UART's FIFO would; None: all of them at once.
        self.on_line = None
        self.serial_room_per_tick = None
        self.serial_written = 0  # bytes written, all told
        self.serial_waited = 0  # writes that would have waited for the UART
        self._serial_room = 0
        self._partial = b""
        self.restarts = 0
        self.optical_w = 0.0
        self.gate_hz = 0  # the hardware gate pulsing the enable line (0: none)
        self.actuate_delay_ms = 0  # how long after the tick's start the outputs take effect
        self._now_ms = 0  # the tick's time, as sensed
        self.clock_set_s = None  # the wall clock (wall_clock_s): unknown until set
        self.clock_set_at_ms = 0
        # RTC memory as hw.Hardware keeps it (its first 4 bytes the clock's); `rtc_kept` is what
        # the chip's RTC memory holds: a reset keeps it (reboot()), a power cut does not.
        self.rtc_memory = bytearray(64)
        self.rtc_kept = bytes(64)
        self.rtc_writes = 0

    rtc_memory_free = 4

    def keep_rtc_memory(self):
        self.rtc_kept = bytes(self.rtc_memory)
        self.rtc_writes += 1

    def reboot(self, power_cut=False):
        """The chip resets (a power cut too): outputs off; RTC memory (and the clock) survive
        only a reset. The next Hardware reads RTC memory back."""
        self.safe_off()
        if power_cut:
            self.rtc_kept = bytes(64)
            self.clock_set_s = None
        self.rtc_memory = bytearray(self.rtc_kept)

    def press_footswitch(self, pressed=True):
        self.levels["footswitch_no_closed"] = pressed
        self.levels["footswitch_nc_closed"] = not pressed

    def sense(self, inp, now_ms):
        elapsed_ms = ticks_diff(now_ms, self._now_ms)
        self._now_ms = now_ms  # the outputs go off at this time if the read fails
        self._serial_room = self.serial_room_per_tick
        if self.fail_next_sense:
            self.fail_next_sense = False
            raise OSError("simulated sensor bus failure")
        if self.sense_error is not None:
            error, self.sense_error = self.sense_error, None
            raise error
        inp.t_ms = now_ms
        inp.enable_sensed = self.enable or self.enable_stuck
        # The sense pin's pulse counter: a gate's periods since the last tick (at least one at
        # >= 100 Hz), none from a line stuck high.
        pulsing = self.enable and self.gate_hz and not self.enable_stuck
        inp.enable_edges = max(1, self.gate_hz * elapsed_ms // 1000) if pulsing else 0
        for name, value in self.levels.items():
            setattr(inp, name, value)
        inp.encoder_steps, self.encoder_turns = self.encoder_turns, 0
        if self.monitor is not None:
            inp.monitor_uv = self._photodiode_uv()
        samples = inp.thermistor_samples
        middle = len(samples) // 2
        for i in range(len(samples)):
            samples[i] = self.thermistor_uv + (i - middle) * self.spread_uv

    def _photodiode_uv(self):
        points = self.monitor["calibration"]
        (uv0, w0), (uv1, w1) = points[0], points[1]
        watts = self.optical_w + self.stray_light_w
        return int(uv0 + (uv1 - uv0) * (watts - w0) / (w1 - w0))

    def actuate(self, out):
        if self.calibration is not None:
            # A stuck enable holds the driver on at the set-point's peak, whatever the gate.
            gate = out.gate_duty_u16 / 65536 if out.gate_hz and not self.enable_stuck else 1.0
            on = (out.laser_enable or self.enable_stuck) and out.pwm_duty_u16
            self.optical_w = self.calibration.watts(out.pwm_duty_u16) * gate if on else 0.0
            self.optical_w *= self.light_factor
        self._record(out)
        return ticks_add(self._now_ms, self.actuate_delay_ms)

    def _record(self, out):
        """What the outputs now are, for the tests to see."""
        self.enable = out.laser_enable
        self.gate_hz = out.gate_hz if out.laser_enable else 0
        self.duty_u16 = out.pwm_duty_u16
        self.led = out.emission_led
        self.buzzer = out.buzzer

    def check_shutdown_path(self):
        return self.shutdown_path_problem

    def maintenance_button_held(self):
        return self.levels["reset_pressed"]

    def read_serial_byte(self):
        if not self.serial_in:
            return -1
        byte = self.serial_in[0]
        self.serial_in = self.serial_in[1:]
        return byte

    def write_serial(self, buf, off, n, wait=False):
        room = self._serial_room
        if room is not None:
            if n > room:
                if not wait:
                    n = room
                else:
                    self.serial_waited += 1
            self._serial_room = max(0, room - n)
        self.serial_written += n
        chunk = buf[off:off + n]
        self._partial += chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        end = self._partial.find(b"\n")
        while end >= 0:
            line, self._partial = self._partial[:end].decode(), self._partial[end + 1:]
            if self.on_line is not None:
                self.on_line(line)
            end = self._partial.find(b"\n")
        return n

    def wall_clock_s(self):
        """The RTC: None until set, then counting with the ticks' clock (the sensed time)."""
        if self.clock_set_s is None:
            return None
        return self.clock_set_s + (self._now_ms - self.clock_set_at_ms) // 1000

    def set_wall_clock(self, utc_s):
        self.clock_set_s, self.clock_set_at_ms = utc_s, self._now_ms

    def restore_wall_clock(self):
        return None  # no battery-backed clock: the time is what set_wall_clock set

    def restart(self):
        self.safe_off()
        self.restarts += 1

    def start_watchdog(self, timeout_ms):
        self.watchdog_ms = timeout_ms

    def feed_watchdog(self):
        self.watchdog_feeds += 1

    def safe_off(self):
        self.safe_off_calls += 1
        self.enable = False
        self.gate_hz = 0
        self.duty_u16 = 0
        self.optical_w = 0.0
        self.led = False
        self.buzzer = False
        return ticks_add(self._now_ms, self.actuate_delay_ms)


class Rig:
    """The firmware's App on a FakeHardware, ticked by hand in virtual time."""

    def __init__(self, board=None, spec=True, power_w=10.0, dose_j_cm2=8.0, area_cm2=100.0,
                 temp_c=25.0, start_ms=0, integrity_problem=None, watchdog_reset=False,
                 hw=None, settings_problem=None, outbox=None):
        from app import App

        self.board = board or load_board()
        if isinstance(spec, dict):  # a whole treatment spec (pulsed ones, say)
            self.treatment = treatment_module.for_board(spec, self.board)
        else:
            self.treatment = treatment(self.board, power_w, dose_j_cm2, area_cm2) if spec else None
        self.hw = hw or FakeHardware(board=self.board)
        self.lines = []  # every event line but status lines, of which only the latest is kept
        self.last_status = None
        self.now_ms = start_ms
        self.hw.on_line = self._write
        self.app = App(self.hw, self.board, self.treatment, start_ms, outbox)
        self.period_ms = self.board["loop_ms"]
        self.set_temp(temp_c)
        self.self_test = self.app.self_test(start_ms, integrity_problem, watchdog_reset,
                                            settings_problem)
        self.tick()  # the first tick after boot: buttons held now are not presses

    @property
    def state(self):
        from controller import STATE_NAMES

        return STATE_NAMES[self.app.controller.state]

    def tick(self, period_ms=None):
        """One tick; the next one `period_ms` later (default: the loop's period)."""
        self.app.step(self.now_ms)
        self.now_ms = ticks_add(self.now_ms, period_ms or self.period_ms)

    def run_ms(self, ms, every_ms=None):
        """Tick for `ms`: every loop period, or every `every_ms` where only the clock matters
        (long timeouts the firmware compares with the clock: 90 000 ticks of 10 ms cost half a
        minute on MicroPython)."""
        step_ms = every_ms or self.period_ms
        while ms >= step_ms:
            self.tick(step_ms)
            ms -= step_ms
        for _ in range(ms // self.period_ms):  # the rest of `ms`, tick by tick
            self.tick()

    def set(self, **levels):
        self.hw.levels.update(levels)
        self.tick()

    def press(self, button):
        self.set(**{button: True})
        self.set(**{button: False})

    def arm(self):
        self.set(key_on=True)
        self.press("arm_pressed")

    def press_footswitch(self):
        """Press and hold the pedal through its debounce time."""
        self.hw.press_footswitch()
        self.run_ms(self.board["timing"]["footswitch_debounce_ms"] + self.period_ms)

    def start_emitting(self):
        self.arm()
        self.run_ms(self.board["timing"]["emission_delay_ms"])
        self.press_footswitch()
        assert self.state == "EMITTING", self.state

    def set_temp(self, temp_c):
        self.hw.thermistor_uv = int(self.app.controller.thermal.sensor.uv_at(temp_c))

    def ramp_temp(self, from_c, to_c, c_per_s, until=None):
        """Move the heatsink reading from from_c to to_c at c_per_s, a tick at a time; stop
        early when until() is true. Returns the temperature reached."""
        step = c_per_s * self.period_ms / 1000.0
        temp = from_c
        while (temp < to_c) if to_c > from_c else (temp > to_c):
            temp = min(temp + step, to_c) if to_c > from_c else max(temp - step, to_c)
            self.set_temp(temp)
            self.tick()
            if until is not None and until():
                break
        return temp

    def _write(self, line):
        if '"ev": "status"' in line:
            self.last_status = line  # a long run prints thousands: keep the heap small
        else:
            self.lines.append(line)

    def events(self, ev):
        result = []
        lines = self.lines + [self.last_status] if self.last_status else self.lines
        for line in lines:
            obj = json.loads(line)
            if obj.get("ev") == ev:
                result.append(obj)
        return result

    def replies(self):
        """The replies to serial requests, oldest first."""
        return [obj for obj in (json.loads(line) for line in self.lines)
                if "ok" in obj and "ev" not in obj]

    # -- the device's memory and its serial port ------------------------------------------------

    def attach_memory(self, flash=None, store=True, reset="RESET"):
        """Give the app what startup.main gives it on the device: the settings store and the journal
        on a flash (a FakeFlash that can lose power), the logbook, and the serial protocol.
        `store`: save first settings (the board's calibration, PIN) if the flash has none."""
        from commands import Commands
        from fakeflash import FakeFlash
        from startup import open_memory

        flash, settings, logbook, journal, _ = open_memory(self.board, flash or FakeFlash())
        self.flash = flash
        if store and settings.values is None:
            settings.save({"calibration": self.board["diode"]["calibration"],
                           "calibrated_on": "2026-11-01", "pin": {"new": PIN}})
        app = self.app
        app.flash, app.settings, app.journal, app.logbook = flash, settings, journal, logbook
        app.library_path = PROTOCOLS_JSON
        app.commands = Commands(app, self.hw.read_serial_byte, app.outbox, self.now_ms,
                                logbook.pin_failures)
        logbook.boot(app, reset, {}, self.now_ms)
        return self

    def send(self, request, max_ticks=100):
        """Send one request line (a dict, or the raw text) and tick until its reply; return it."""
        line = request if isinstance(request, str) else json.dumps(request)
        self.hw.serial_in += line.encode() + b"\n"
        count = len(self.replies())
        for _ in range(max_ticks):
            self.tick()
            replies = self.replies()
            if len(replies) > count:
                return replies[count]
        raise AssertionError("no reply to %r" % line)

    def records(self, ev=None):
        """The journal's records (bodies), oldest first; only those of kind `ev` if given."""
        import journal

        lines = self.app.journal.read(1, 100000)
        return [r for r in (journal.parse(line)[2] for line in lines)
                if ev is None or r["ev"] == ev]


PIN = "4321"  # the service PIN Rig.attach_memory stores


def read_table(name):
    """A manufacturer's R-T table from host_tools/vdevice/data/NAME.csv as [[temp_c, ohm], ...]."""
    rows = []
    with open(REPO + "/host_tools/vdevice/data/" + name + ".csv") as f:
        for line in f:
            line = line.strip()
            if line and line[0] not in "#t":
                t, r = line.split(",")
                rows.append([float(t), float(r)])
    return rows


TDK = "ntc_tdk_epcos_b57861s0103"
SEMITEC = "ntc_semitec_103at"


def thermistor_config(model="table", table=None, **extra):
    """A sim board's thermistor section with another model or table."""
    config = load_board()["thermistor"]
    config["model"] = model
    if table is not None:
        config["table"] = table
    config.update(extra)
    return config


# -- the protocol library (tests/firmware/test_protocols.py) -------------------------------------

PROTOCOLS_JSON = REPO + "/firmware/protocols.json"


def shipped_protocols():
    import protocols

    return protocols.load(PROTOCOLS_JSON)


def preset_data(**changes):
    """A valid library preset as written in protocols.json, with `changes` (None deletes)."""
    preset = {"name": "test-preset", "region": "knee", "condition": "test", "power_w": 10.0,
              "mode": "cw", "dose_j_cm2": 8.0, "area_cm2": 100.0, "energy_j": 800.0,
              "time_s": 80.0, "skin_power_factor": [1.0, 1.0, 1.0, 1.0, 0.8, 0.6],
              "source": "test"}
    for key in changes:
        if changes[key] is None:
            preset.pop(key, None)
        else:
            preset[key] = changes[key]
    return preset


def library_data(*presets):
    """A protocols.json document holding `presets` (default: one valid preset)."""
    return {"format": 1, "description": "test", "protocols": list(presets) or [preset_data()]}
