# The virtual device's world, run inside the real MicroPython interpreter next to the firmware:
# a virtual clock, the electrical level of every pin, PWMs, counters, timers, the watchdog, the
# RTC, the I2C bus with the panel's display, the operator's inputs and the scenario's events, the
# host's control channel, and the run's trace. Its plant (the diode's light and heat, the
# thermistor, the ADC) is sim_plant's, which the world tells of every step of time and change of
# the diode's drive; injected faults are sim_faults'. The simulated `machine` and `time` modules
# are thin views of this object. Virtual time advances only when the firmware sleeps (scenario
# mode, as fast as the host allows) or with the wall clock (real-time mode, for people and
# mpremote).
import binascii
import json

import sim_display
import sim_faults
import sim_plant
import utime
from calibration import pwm_resolution_bits

# ESP32 ticks_ms and ticks_us wrap at 2**30 (the 64-bit unix port's at 2**62). The mask, unlike
# 2**30 itself, is a small int on the chip interpreter, whose small ints end at 2**30 - 1: past
# them every result is a big int, a heap allocation.
TICKS_MASK = (1 << 30) - 1
TICKS_HALF = 1 << 29
_POWER_ON_RESET, _WDT_RESET = 1, 3  # machine.reset_cause() values
_MAX_CATCH_UP_US = 2000  # real-time mode: the most virtual time one clock read may jump
# The world counts microseconds from an origin, a whole number of seconds after it began, and
# moves the origin up to now (World._rebase) once now is this far past it: every time the world
# holds then stays a small int on the chip (2**30 us is only 17.9 minutes).
_REBASE_US = 1 << 28
_FAR_S = 1000  # an event or end further ahead than this is not due within one step
_DISPLAY_SETTLE_US = 50000  # the screen is recorded once it has shown one image this long
_DISPLAY_ADDR = 0x3C  # the panel's SSD1306 (sim_display), on the panel's I2C lines
_DS3231_ADDR = 0x68


_US = 1000000


def ticks_add(ticks, delta):
    """time.ticks_add as on the ESP32 (period 2**30), with nothing past the chip's small ints."""
    delta &= TICKS_MASK
    if ticks > TICKS_MASK - delta:  # ticks + delta reaches 2**30: wrap
        return ticks - (TICKS_MASK - delta) - 1
    return ticks + delta


def ticks_diff(end, start):
    """time.ticks_diff as on the ESP32: end - start within -2**29 .. 2**29 - 1."""
    diff = (end - start) & TICKS_MASK
    return diff - TICKS_MASK - 1 if diff >= TICKS_HALF else diff


def _periods(drive, t_us):
    """Whole periods of a PWM drive from its start to t_us (at or after it). (t_us - start) *
    freq millionths of a period would pass the chip's small ints within a second: taken apart in
    seconds (freq periods each), milliseconds and microseconds, no step passes 2**30 for any
    frequency up to 1 MHz (the firmware's gate runs at most 20 kHz). No tuples either: a counter
    is read every tick."""
    freq = drive[1]
    dt = t_us - drive[2]
    r = dt % _US
    return dt // _US * freq + (r // 1000 * freq + r % 1000 * freq // 1000) // 1000


def _phase(drive, t_us):
    """Millionths of a period a PWM drive is past its last whole period at t_us (as _periods)."""
    freq = drive[1]
    r = (t_us - drive[2]) % _US
    fine = r % 1000 * freq
    return (r // 1000 * freq + fine // 1000) % 1000 * 1000 + fine % 1000


def _past_pulse(drive, t_us, strict):
    """Whether t_us is past the pulse of the drive's present period (at its end too, unless
    strict): phase * 65536 against duty * 10**6, both divided by 64 to stay small ints."""
    phase, duty = _phase(drive, t_us) * 1024, drive[0] * 15625
    return phase > duty if strict else phase >= duty


def level_at(drive, t_us):
    """The level a pin's drive (see World.drive) gives at t_us, after any edge at t_us itself. A
    PWM starts high: each period is high for duty/65536 of it, then low."""
    if type(drive) is not tuple:
        return drive
    return 0 if _past_pulse(drive, t_us, False) else 1


def last_rise(drive, t_us, strict):
    """A PWM drive's last rising edge at or before t_us (before it if strict), as its index: the
    k-th begins period k, at start + k * 1e6 / freq us (-1: none yet). Integers only: exact for
    any frequency."""
    k = _periods(drive, t_us)
    return k - 1 if strict and _phase(drive, t_us) == 0 else k


def last_fall(drive, t_us, strict):
    """A PWM drive's last falling edge at or before t_us (before it if strict): the j-th ends
    period j's pulse, at start + (j + duty / 65536) * 1e6 / freq us (-1: none yet)."""
    k = _periods(drive, t_us)
    return k if _past_pulse(drive, t_us, strict) else k - 1


_RTC_POWER_ON_S = 946684800  # 2000-01-01, what the ESP32's RTC reads at power-on
_RTC_CLOCK_SET = b"LC1"  # hw.py's mark in RTC memory: the clock was set
RTC_MEMORY_BYTES = 2048  # MICROPY_HW_RTC_USER_MEM_MAX on the ESP32


class SimEnd(BaseException):
    """The scenario's end: unwinds the firmware like a power cut (its `finally` still runs)."""


class HardReset(BaseException):
    """machine.reset(), the watchdog or a power cut: the launcher runs boot.py and main.py
    again."""


class SoftReset(BaseException):
    """machine.soft_reset()."""


def _seconds_us(t_s, t_us=None):
    """A time as (whole seconds, microseconds): from t_us (an int) if given, else from t_s
    (seconds). The host gives whole microseconds: in the chip's single precision a float
    carries a time to the microsecond only up to 16 s."""
    if t_us is None:
        whole = int(t_s)
        t_us = round((t_s - whole) * 1e6)  # the fraction alone, before the scale loses it
        return (whole + t_us // _US, t_us % _US)
    return (t_us // _US, t_us % _US)


def _event(e):
    """A scenario event as (name, value): an input, ("fault", NAME), ("ambient_c", C) or
    ("serial", LINE)."""
    if "serial" in e:
        return ("serial", e["serial"])
    if e.get("fault") == "diode_degraded":
        return ("diode_degraded", e["factor"])
    if "fault" in e:
        return ("fault", e["fault"])
    if "ambient_c" in e:
        return ("ambient_c", e["ambient_c"])
    return (e["input"], e["value"])


class World:
    def __init__(self, config, board):
        self.config = config
        self.board = board
        self.realtime = config.get("realtime", False)
        self.speed = float(config.get("speed", 1.0))  # real-time mode: virtual s per wall s
        # Virtual time: now_us microseconds after the origin, origin_s whole seconds after the
        # world began (see _REBASE_US). The firmware's clocks start at clock_start_ms.
        self.origin_s = 0
        self.now_us = 0
        start_ms = config.get("clock_start_ms", 0)
        self._origin_ticks_ms = start_ms & TICKS_MASK
        self._origin_ticks_us = start_ms * 1000 & TICKS_MASK
        # Times further ahead than the origin can reach are kept as (seconds, microseconds).
        self._until = _seconds_us(config["until_s"], config.get("until_us")) \
            if "until_s" in config else None
        # (at s, at us, order, name, value); name is an input, "fault" or "ambient_c". The order
        # keeps events at the same instant as the scenario lists them (MicroPython's sort is
        # unstable).
        self._events = [_seconds_us(e["at_s"], e.get("at_us")) + (i,) + _event(e)
                        for i, e in enumerate(config.get("events", ()))]
        self._events.sort(key=lambda e: (e[0], e[1], e[2]))
        self._next_event = 0
        self._sleeping = False  # inside sleep_us: the origin stays where it is
        # Pins: externally driven levels (inputs) and what the firmware drives (outputs).
        self.driven = {}
        self.outputs = {}
        self.pwm = {}  # pin -> [duty_u16 effective, freq]
        self.timers = {}  # Timer -> [due_us, period_us or 0, callback]
        self.wdt_timeout_ms = None
        self.wdt_fed_us = 0
        self.counters = {}  # PCNT unit -> machine.Counter (the singletons, initialised or not)
        self.counting = []  # the initialised ones, told of every change of a level
        self.pulls = {}  # pin -> "up": pulls set by a peripheral (a PCNT pulls its source up)
        self.reset_cause = _POWER_ON_RESET
        # The RTC (sim_machine.RTC): its reading less the world's seconds, from 1970. From
        # power-on it reads 2000-01-01 as the ESP32's does; `rtc_utc_s` starts it set (its
        # RTC memory saying so, as hw.set_wall_clock leaves it).
        # RTC memory: the chip's 2 KB, and how much of it the firmware last wrote. Written in
        # place, as the chip copies it: the firmware writes it every tick of a session, and a
        # new bytes object each time would be garbage in the firmware's heap that the chip's
        # heap never sees.
        self.rtc_memory, self.rtc_memory_len = bytearray(RTC_MEMORY_BYTES), 0
        self.rtc_offset_s = _RTC_POWER_ON_S
        if config.get("rtc_utc_s") is not None:
            self.rtc_offset_s = int(config["rtc_utc_s"])
            self.set_rtc_memory(_RTC_CLOCK_SET)
        # The battery-backed DS3231 on I2C (sim_machine.I2C), where the board has one ("rtc"):
        # its reading less the world's seconds, and its oscillator-stopped flag. A power cut
        # leaves both (its battery). Fresh, it reads 2000-01-01 with the flag set; `ds3231_utc_s`
        # starts it set.
        self.ds3231_fitted = bool(config.get("ds3231"))
        rtc = board.get("rtc")  # its I2C lines (scl, sda): it answers on no others
        self.ds3231_lines = None if rtc is None else (rtc["scl_pin"], rtc["sda_pin"])
        self.ds3231_offset_s, self.ds3231_stopped = _RTC_POWER_ON_S, True
        if config.get("ds3231_utc_s") is not None:
            self.ds3231_offset_s, self.ds3231_stopped = int(config["ds3231_utc_s"]), False
        # Injected faults of the computer (sim_faults), the state the world keeps for them:
        self.stall_us = 0  # loop_hang: the next input read takes this long
        self.slow_until_us = 0  # slow_ticks: until then every tick's input read is slow
        self.raise_next = None  # firmware_exception / memory_exhaustion: the next read raises
        self.heap_hog = None  # memory_exhaustion: the heap, held until the firmware sleeps again
        self.plant = sim_plant.Plant(board, config["table_path"], config.get("ambient_c", 25.0))
        # The run's record, flat lists of small integers (and of objects that already exist), as
        # the plant keeps its own two and for the same reason (sim_plant.Plant), each time as two,
        # whole seconds and microseconds (one would pass the chip's small ints after 17.9 minutes):
        #   optical, temperature                                    (the plant's)
        #   inputs       t_s, t_us, name, value, ...                 (inputs, "fault", "ambient_c")
        #   resets       (t_s, t_us, cause), ...
        #   display      t_s, t_us, changes, ...  (each screen a person saw: see _record_display)
        self.trace = {"inputs": [], "optical": self.plant.optical,
                      "temperature": self.plant.temperature, "resets": [], "display": []}
        self.enable_pin = board["laser"]["enable_pin"]
        self.enable_sense_pin = board["laser"].get("enable_sense_pin")
        self.pwm_pin = board["laser"]["pwm_pin"]
        self.pins = {}  # input name -> (pin, its active level)
        for name, spec in board["inputs"].items():
            self.pins[name] = (spec["pin"], 1 if spec["active"] == "high" else 0)
        self._init_panel(board.get("panel"))
        for name in ("key", "interlock", "estop", "footswitch", "arm", "reset") + \
                (("select", "back") if self.display is not None else ()):
            self.set_input(name, config.get("initial", {}).get(name, name == "interlock"), False)
        self._real_start_us = utime.ticks_us()
        # Real-time mode reads the host's clock against _real_start_us, which the rebase moves
        # too: rebasing before 2**28 us of real time keeps the chip's ticks_diff in its range.
        self._rebase_at_us = max(_US, int(_REBASE_US * min(1.0, self.speed)))
        self._next_report_us = 0
        self._reset_us = None  # when the last reset happened, if since the origin (repl_uart)
        from repl_uart import ReplUart  # (it reads WORLD from here: imported once this is)

        self.uart = ReplUart(self, board["serial"]["baud"])  # the port's output: sys.stdout
        # Scenario mode: the host's end of the serial port is a pipe into this interpreter's
        # stdin (host_tools/scenario.py), so the firmware reads its requests exactly as on the
        # chip, from sys.stdin; the world writes each one at its virtual time.
        self._serial = None
        if config.get("serial_fd") is not None:
            self._serial = open("/dev/fd/%d" % config["serial_fd"], "wb")  # noqa: SIM115 - open for the whole run
        self._sock = None
        if self.realtime and config.get("control_port"):
            self._open_control(config["control_port"])

    def _init_panel(self, panel):
        """The operator panel, where the board has one ("panel"): the SSD1306 display at 0x3C on
        the panel's I2C lines (and the time every I2C transfer takes on the bus: i2c_bus_s and
        i2c_bus_us, whole seconds and microseconds, for the bench; virtual time does not pass
        for it), the rotary encoder's two phases and the select and back buttons. Between
        detents the encoder's contacts are open: its module's resistors hold both phases high."""
        self.i2c_bus_s = self.i2c_bus_us = self._i2c_bus_ns = 0
        self.display = self.encoder_pins = None
        self._display_due_us = None  # when the screen will have shown one image long enough
        self._display_closed = False  # the run has ended: the last screen is recorded
        self.encoder_steps = 0  # detents turned, clockwise positive
        self.encoders = []  # the initialised machine.Encoder objects
        if panel is None:
            return
        self.display = sim_display.Ssd1306()
        self.display_lines = (panel["scl_pin"], panel["sda_pin"])
        self._shown = bytearray(sim_display.BYTES)  # the image last recorded (dark at first)
        self._view = bytearray(sim_display.BYTES)
        self._display_s = self._display_us = 0  # when the image last changed
        self.encoder_pins = (panel["encoder_a_pin"], panel["encoder_b_pin"])
        for pin in self.encoder_pins:
            self.driven[pin] = 1
        for name in ("select", "back"):
            spec = panel[name]
            self.pins[name] = (spec["pin"], 1 if spec["active"] == "high" else 0)

    # -- inputs --------------------------------------------------------------------------------

    def set_input(self, name, value, record=True):
        if record:  # first: a power cut does not return
            trace = self.trace["inputs"]
            self._stamp(trace)
            trace.append(name)
            trace.append(value)
        if name == "footswitch":
            self._drive("footswitch_no", value)
            self._drive("footswitch_nc", not value)
        elif name in self.pins:
            self._drive(name, value)
        elif name == "encoder":  # value: detents turned now, clockwise positive
            if self.encoder_pins is None:
                raise ValueError("unknown input 'encoder' (the board has no panel)")
            self.encoder_steps += value
            for encoder in self.encoders:
                encoder._turn(value)
        elif name == "ambient_c":
            self.plant.ambient_c = float(value)
        elif name == "fault":
            sim_faults.inject(self, value)
        elif name == "serial":
            if self._serial is None:
                raise ValueError("serial events need the scenario runner's serial pipe")
            self._serial.write(value.encode() + b"\n")  # unbuffered: in the pipe at once
        elif name == "diode_degraded":  # the diode's light at any current scales by this factor
            self.plant.degradation = float(value)
            self._drive_plant()
        else:
            raise ValueError("unknown input %r" % name)

    def _drive(self, name, active):
        pin, active_level = self.pins[name]
        self.driven[pin] = active_level if active else 1 - active_level
        self._levels_changed()

    def pin_level(self, pin, pull):
        if pin == self.pins["key"][0]:
            sim_faults.read_stall(self)
        drive = self.drive(pin)
        if drive is None:  # floating: the pull decides, else it reads low
            return 1 if self.pulls.get(pin, pull) == "up" else 0
        return level_at(drive, self.now_us)

    def drive(self, pin):
        """What sets a pin's electrical level now: a PWM's (duty_u16, freq_hz, start_us) while it
        pulses, else the steady level 0 or 1, or None where nothing drives it. The enable sense
        pin is the driver's enable input: the enable line (a gate PWM's pulses of the moment, not
        their average; low where nothing drives it, the board's pull-down), or high when stuck."""
        if pin == self.enable_sense_pin:
            if self.plant.enable_stuck:
                return 1
            drive = self.drive(self.enable_pin)
            return 0 if drive is None else drive
        pwm = self.pwm.get(pin)
        if pwm is not None:  # the PWM has the pad, whatever the pin's output register holds
            return pwm if pwm[0] else 0
        level = self.outputs.get(pin)
        if level is None:
            level = self.driven.get(pin)
        return level

    def _levels_changed(self):
        """Any pin's level may have changed now: the counters count its edge."""
        for counter in self.counting:
            counter._follow()

    # -- outputs -------------------------------------------------------------------------------

    def outputs_changed(self):
        """What drives the laser may have changed now (an output, a PWM, the driver's enable
        input stuck): the plant's light and heat follow, the counters count the edge."""
        self._drive_plant()
        self._levels_changed()

    def _drive_plant(self):
        """Tell the plant what drives the diode now: the current set-point PWM's duty, and the
        enable line, a plain output's level or a gate PWM (and how far into its period now is).
        (The gate's age worked out first: with a shallower stack the frame fits the C stack, where
        MicroPython puts those of up to 11 words; a larger one is a heap allocation on every
        call, which moves the firmware's collections and where its objects land.)"""
        duty = self.pwm.get(self.pwm_pin, (0, 0, 0))[0]
        gate = self.pwm.get(self.enable_pin)  # the enable line driven by a PWM: pulses
        if gate is None:
            self.plant.drive(duty, self.outputs.get(self.enable_pin) == 1, 0, 0, 0)
        else:
            age_us = self.now_us - gate[2]
            self.plant.drive(duty, False, gate[0], gate[1], age_us)

    def set_output(self, pin, level):
        if self.outputs.get(pin) == level and pin in self.outputs:
            return  # as it was: no edge, the same light (and no float garbage every tick)
        self.outputs[pin] = level
        self.outputs_changed()

    def set_pwm(self, pin, duty_u16, freq_hz):
        shift = 16 - pwm_resolution_bits(freq_hz)
        old = self.pwm.get(pin)
        # A new duty takes effect without restarting the period; a new frequency restarts it.
        start = old[2] if old is not None and old[1] == freq_hz else self.now_us
        self.pwm[pin] = ((duty_u16 >> shift) << shift, freq_hz, start)
        self.outputs_changed()

    def release_pin(self, pin):
        self.pwm.pop(pin, None)
        self.outputs.pop(pin, None)
        self.outputs_changed()

    def reset_pins(self, cause):
        """A reset: every PWM, timer and counter stops. A hard reset (the watchdog, a power cut,
        machine.reset) returns every GPIO to an input. A soft reset does not: the ESP32 port
        stops the PWMs at their idle level (low) but leaves a plain output driving its level
        (machine_pins_deinit only removes the interrupt handlers), until boot.py changes it."""
        self.timers.clear()
        if cause == "soft reset":
            for pin in self.pwm:
                self.outputs[pin] = 0
        else:
            self.outputs.clear()
        self.pwm.clear()
        for counter in self.counting:
            counter._pin = None
        self.counting = []
        for encoder in self.encoders:
            encoder._pins = None
        self.encoders = []
        self.counters.clear()
        self.pulls.clear()
        self._drive_plant()
        self.trace["resets"].append((self.origin_s + self.now_us // _US, self.now_us % _US,
                                     cause))
        self._reset_us = self.now_us

    def power_cut(self):
        """Power lost (sim_faults' power_cut): every output dies at once, the RTC and its memory
        too; the chip starts again from power-on."""
        self.reset_pins("power cut")
        self.reset_cause = _POWER_ON_RESET
        if self.display is not None:  # its registers to their power-on values: dark
            self.display.power_on_reset()
            self.display_changed()
        self.rtc_offset_s = _RTC_POWER_ON_S - (self.origin_s + self.now_us // _US)
        self.rtc_memory_len = 0
        self.wdt_timeout_ms = None
        raise HardReset("power cut")

    def set_rtc_memory(self, data):
        """RTC memory now holds `data` (copied in place, allocating nothing)."""
        memory = self.rtc_memory
        for i in range(len(data)):
            memory[i] = data[i]
        self.rtc_memory_len = len(data)

    def rtc_memory_bytes(self):
        return bytes(self.rtc_memory[:self.rtc_memory_len])

    # -- time ----------------------------------------------------------------------------------

    def ticks_ms(self):
        self._follow_wall_clock()
        return ticks_add(self._origin_ticks_ms, self.now_us // 1000)

    def ticks_us(self):
        self._follow_wall_clock()
        return ticks_add(self._origin_ticks_us, self.now_us)

    def drop_trace(self):
        """Keep no trace from now on: for runs that never read it (the bench, the heap probe),
        whose heap it would otherwise fill as they run."""
        self.plant.drop_trace()
        for key in self.trace:
            self.trace[key] = sim_plant.NO_TRACE

    def _stamp(self, record):
        """Append the time now to a trace list: whole seconds, microseconds."""
        record.append(self.origin_s + self.now_us // _US)
        record.append(self.now_us % _US)

    def sleep_us(self, us):
        self.heap_hog = None  # memory_exhaustion: the firmware is through its error path
        nested, self._sleeping = self._sleeping, True  # a timer callback may sleep too
        try:
            while us > 0:
                if not nested and self.now_us >= self._rebase_at_us:
                    self._rebase()
                step = us if us < _REBASE_US else _REBASE_US
                us -= step
                self._sleep_step(self.now_us + step)
        finally:
            self._sleeping = nested

    def _sleep_step(self, target):
        if self.realtime:
            while self.now_us < target:
                self._poll_control()
                remaining_us = int((target - self._wall_us()) / self.speed)
                if remaining_us > 0:
                    utime.sleep_us(min(remaining_us, 5000))
                self.advance_to(min(self._wall_us(), target))
        else:
            self.advance_to(target)

    def run_to_end(self):
        """Let virtual time pass until the scenario's end (SimEnd), if it has one."""
        while self._until is not None:
            self.sleep_us(_REBASE_US)

    def _rebase(self):
        """Move the origin up to the last whole second before now, and every time the world
        holds with it, so that they all stay small ints on the chip however long the world runs.
        (A time added to the world, or to what it drives, must be moved here too.)"""
        shift_s = self.now_us // _US
        shift = shift_s * _US
        self.uart.level()  # the UART's FIFO brought up to now, before now moves
        self.origin_s += shift_s
        self.now_us -= shift
        self.uart.rebase(shift)
        if self._reset_us is not None:
            self._reset_us = self._reset_us - shift if self._reset_us >= shift else None
        self._origin_ticks_ms = ticks_add(self._origin_ticks_ms, shift_s * 1000)
        self._origin_ticks_us = ticks_add(self._origin_ticks_us, shift)
        self._real_start_us = utime.ticks_add(self._real_start_us, int(shift / self.speed))
        self.wdt_fed_us = self.wdt_fed_us - shift if self.wdt_timeout_ms is not None else 0
        for entry in self.timers.values():
            entry[0] -= shift
        self.slow_until_us = max(0, self.slow_until_us - shift)
        self._next_report_us = max(0, self._next_report_us - shift)
        if self._display_due_us is not None:
            self._display_due_us -= shift
        # A PWM's start moves up by whole seconds, i.e. whole periods (its frequency is a whole
        # number of Hz): to the last second at or before now. A counter following it counts its
        # periods from the start: the same edges, fewer periods ago.
        for pin in self.pwm:
            duty, freq, start = old = self.pwm[pin]
            seconds = (self.now_us - start + shift) // _US
            drive = self.pwm[pin] = (duty, freq, start - shift + seconds * _US)
            for counter in self.counting:
                if counter._drive is old:
                    counter._drive = drive
                    counter._rise -= seconds * freq
                    counter._fall -= seconds * freq
        self._drive_plant()  # the gate's phase, from its moved start: whole periods fewer

    def end_us(self):
        """The scenario's end in microseconds from the origin; None without one, or while it is
        too far ahead to be due within one step."""
        return None if self._until is None else self._due_at(self._until[0], self._until[1])

    def reset_at(self, t_us):
        """Whether the chip was reset (power cut, watchdog, machine.reset) at t_us."""
        return self._reset_us == t_us

    def _due_at(self, s, us):
        """A time kept as (seconds, microseconds) in microseconds from the origin, or None when it
        is too far ahead to be due within one step."""
        s -= self.origin_s
        return None if s > _FAR_S else s * _US + us

    def _next_event_at(self, limit_us):
        """When the next event is due, from the origin, if by limit_us; else None."""
        if self._next_event >= len(self._events):
            return None
        event = self._events[self._next_event]
        at_us = self._due_at(event[0], event[1])
        return at_us if at_us is not None and at_us <= limit_us else None

    def _wall_us(self):
        """Virtual time (from the origin) that real-time mode should have reached by now. The
        host's clock wraps as the chip's does, at 2**30 us on the chip interpreter: a read that
        seems to go back in time (a REPL left idle for minutes) starts again from now."""
        elapsed_us = utime.ticks_diff(utime.ticks_us(), self._real_start_us)
        if elapsed_us < 0:
            self._real_start_us = utime.ticks_add(utime.ticks_us(),
                                                  -int(self.now_us / self.speed))
            return self.now_us
        return int(elapsed_us * self.speed)

    def _follow_wall_clock(self):
        if self.realtime:
            if not self._sleeping and self.now_us >= self._rebase_at_us:
                self._rebase()
            wall = self._wall_us()
            if wall > self.now_us + _MAX_CATCH_UP_US:
                # The host fell behind (load, a sped-up console): drop the gap rather than jump
                # the firmware's clock by it, which the firmware would rightly see as its own
                # ticks overrunning. Virtual time runs slow for a moment instead.
                lag_us = wall - self.now_us - _MAX_CATCH_UP_US
                self._real_start_us = utime.ticks_add(self._real_start_us,
                                                      int(lag_us / self.speed))
                wall = self.now_us + _MAX_CATCH_UP_US
            if wall > self.now_us:
                self.advance_to(wall)

    def advance_to(self, target_us):
        """Run the world to target_us: the scenario's events and the timers at their times, and
        the watchdog at its deadline. The deadline wins over whatever is due at or after it: the
        reset comes first, and the events still pending land after it, each at its own time (the
        operator's pedal does not wait for the chip to boot). A timer callback or an event before
        the deadline may feed the watchdog or cut the power: the deadline is read afresh after
        each."""
        while True:
            limit = target_us
            bite = self._wdt_deadline()
            if bite is not None and bite <= limit:
                limit = bite - 1  # due at the deadline itself: after the reset
            due = self._next_timer(limit)
            at_us = self._next_event_at(limit)
            if at_us is not None and (due is None or at_us <= due[0]):
                event = self._events[self._next_event]
                self._step_to(at_us)
                self._next_event += 1
                self.set_input(event[3], event[4])
            elif due is not None:
                self._step_to(due[0])
                self._fire(due[1])
            else:
                break
        if bite is not None and bite <= target_us:
            self._step_to(bite)
            self._check_watchdog()
        self._step_to(target_us)
        self._check_watchdog()

    def _wdt_deadline(self):
        """The instant the watchdog resets the chip unless fed before it, or None."""
        if self.wdt_timeout_ms is None:
            return None
        return self.wdt_fed_us + self.wdt_timeout_ms * 1000 + 1

    # -- the I2C bus (sim_machine.I2C) and the panel's display ---------------------------------

    def i2c_answers(self, addr, lines):
        """Whether a device acknowledges `addr` on the I2C lines (scl, sda): the panel's display
        at 0x3C, the DS3231 at 0x68, each where fitted and on its own lines."""
        if addr == _DISPLAY_ADDR:
            return self.display is not None and lines == self.display_lines
        if addr == _DS3231_ADDR:
            return self.ds3231_fitted and self.ds3231_lines in (None, lines)
        return False

    def i2c_bus(self, nbytes, ns_per_bit, conditions):
        """A transfer of nbytes (the address bytes included) at 1e9 / ns_per_bit Hz: nine bit
        times a byte (eight and the acknowledge) and one for each start, repeated start and stop
        condition. Added up in i2c_bus_s and i2c_bus_us, small ints all."""
        ns = self._i2c_bus_ns + (9 * nbytes + conditions) * ns_per_bit
        us = self.i2c_bus_us + ns // 1000
        self._i2c_bus_ns = ns % 1000
        if us >= _US:
            self.i2c_bus_s += us // _US
            us %= _US
        self.i2c_bus_us = us

    def display_changed(self):
        """The display's image may have changed now: recorded once it has stood still for
        _DISPLAY_SETTLE_US, as a person would notice it (and at the end)."""
        if self._display_closed:
            return
        self._display_s = self.origin_s + self.now_us // _US
        self._display_us = self.now_us % _US
        self._display_due_us = self.now_us + _DISPLAY_SETTLE_US

    def _record_display(self):
        """Record the screen, if it differs from the last recorded: stamped with the time it
        last changed, then its changes as sim_display.changes writes them."""
        self._display_due_us = None
        record = self.trace["display"]
        if record is sim_plant.NO_TRACE:
            return
        changes = sim_display.changes(self._shown, self.display.image(self._view))
        if changes:
            record.append(self._display_s)
            record.append(self._display_us)
            record.append(changes)

    # -- timers --------------------------------------------------------------------------------

    def start_timer(self, timer, period_us, periodic, callback):
        self.timers[timer] = [self.now_us + period_us, period_us if periodic else 0, callback]

    def stop_timer(self, timer):
        self.timers.pop(timer, None)

    def _next_timer(self, limit_us):
        """(due_us, timer) of the earliest timer due by limit_us, or None."""
        best = None
        if not self.timers:
            return None
        for timer, entry in self.timers.items():
            if entry[0] <= limit_us and (best is None or entry[0] < best[0]):
                best = (entry[0], timer)
        return best

    def _fire(self, timer):
        entry = self.timers[timer]
        if entry[1]:
            entry[0] += entry[1]
        else:
            del self.timers[timer]
        if entry[2] is not None:
            entry[2](timer)

    def _step_to(self, t_us):
        until_us = self.end_us()
        end = until_us is not None and t_us >= until_us
        if end:
            t_us = until_us
        if t_us > self.now_us:
            self.plant.advance(t_us - self.now_us)
            self.now_us = t_us
        if self._display_due_us is not None and (end or self.now_us >= self._display_due_us):
            self._record_display()
        if end:
            self._display_closed = True  # what the firmware's `finally` draws is not seen
            raise SimEnd()

    def _check_watchdog(self):
        if self.wdt_timeout_ms is not None and self.now_us - self.wdt_fed_us > \
                self.wdt_timeout_ms * 1000:
            self.reset_pins("watchdog")
            self.reset_cause = _WDT_RESET
            self.wdt_timeout_ms = None  # a reset stops the watchdog until the firmware starts it
            raise HardReset("watchdog")

    # -- the host's control channel (real-time mode) --------------------------------------------

    def _open_control(self, port):
        import socket

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._host = socket.getaddrinfo("127.0.0.1", port)[0][-1]
        self._sock.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
        self._sock.setblocking(False)
        self._sock.sendto(b'{"hello": 1}', self._host)
        self._next_report_us = 0

    def _poll_control(self):
        if self._sock is None:
            return
        while True:
            try:
                data = self._sock.recv(512)
            except OSError:
                break
            try:
                msg = json.loads(data)
                self.set_input(msg["input"], msg["value"])
                self._next_report_us = self.now_us  # report the new levels at once
            except (ValueError, KeyError, TypeError) as e:
                self._sock.sendto(json.dumps({"error": str(e)}).encode(), self._host)
        if self.now_us >= self._next_report_us:
            self._next_report_us = self.now_us + 100000
            self._sock.sendto(json.dumps(self.snapshot()).encode(), self._host)

    def snapshot(self):
        inputs = {}
        for name in self.pins:
            pin, active_level = self.pins[name]
            inputs[name] = self.driven.get(pin) == active_level
        inputs["footswitch"] = inputs["footswitch_no"] and not inputs["footswitch_nc"]
        plant = self.plant
        snapshot = {"t_s": self.origin_s + self.now_us / 1e6, "optical_w": plant.optical_w,
                    "heatsink_c": round(plant.heatsink_c, 2),
                    "junction_c": round(plant.junction_c, 2),
                    "fan": plant.fan_running, "emitted_j": round(plant.emitted_j, 3),
                    "led": self.outputs.get(self.board["indicators"]["emission_led_pin"], 0),
                    "buzzer": self.outputs.get(self.board["indicators"]["buzzer_pin"], 0),
                    "inputs": inputs}
        if self.display is not None:  # the screen as seen (hex, MONO_VLSB: sim_display)
            snapshot["display"] = binascii.hexlify(self.display.image(self._view)).decode()
            snapshot["encoder"] = self.encoder_steps  # detents turned so far
        return snapshot

    def result(self):
        if self._display_due_us is not None:  # the end: the last screen, however briefly shown
            self._record_display()
        self._display_closed = True
        plant = self.plant
        return {"now_s_us": [self.origin_s + self.now_us // _US, self.now_us % _US],
                "emitted_j": plant.emitted_j,
                "max_true_c": plant.max_true_c, "max_junction_c": plant.max_junction_c,
                "uart": self.uart.stats(), "trace": self.trace}


WORLD = None


def install():
    """Make the simulated machine and clock (sim_machine.py, sim_time.py) the `machine` and `time`
    that every later import finds, the firmware's and the REPL's. They are named apart because the
    chip interpreter has them frozen in: a frozen machine.py or time.py would replace the built-in
    module for every script it runs, the firmware's tests too. Call it before the firmware's
    first import; the modules then read WORLD."""
    import sys

    import sim_machine
    import sim_time

    sys.modules["machine"] = sim_machine
    sys.modules["time"] = sim_time
