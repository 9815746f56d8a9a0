# The hardware module: the only firmware module that imports `machine`. It turns pins into the
# Inputs record and the Outputs record into pins, and nothing else. On the virtual device the
# same file runs against a simulated `machine`. The USB serial port (the REPL's UART, sys.stdin
# and sys.stdout) is read and written here too, never blocking the loop: read a byte at a time,
# only what is waiting; written only as far as the UART's transmit FIFO takes it.
import select
import sys
import time
from binascii import hexlify

import heap
from machine import (
    ADC,
    I2C,
    PWM,
    RTC,
    WDT,
    WDT_RESET,
    Counter,
    Encoder,
    Pin,
    reset,
    reset_cause,
    unique_id,
)

# The wall clock: the ESP32's RTC keeps counting through a soft or watchdog reset, and so does its
# RTC memory (machine.RTC().memory()); a power cut loses both. A board with a battery-backed
# DS3231 (board "rtc", ds3231.py) sets the RTC from it at boot after a power cut. What the
# firmware keeps in RTC memory is RTC_MEMORY_BYTES, written whole: its first 4 bytes say whether
# the clock was set since power-on (_CLOCK_SET once a host has set it); the rest, from
# RTC_MEMORY_FREE, is the running session's (session.py).
_CLOCK_SET = b"LC1"
RTC_MEMORY_BYTES = 64
RTC_MEMORY_FREE = 4
_UNIX_2000_S = 946684800  # 2000-01-01 in seconds since 1970: the ESP32's time epoch
# The REPL UART's transmit FIFO (SOC_UART_FIFO_LEN on the ESP32). A write to sys.stdout that does
# not fit waits, a FreeRTOS tick (10 ms) at a time, until the rest does (uart_stdout_tx_strn in
# MicroPython's ports/esp32/uart.c): one 450-byte line at 115200 baud holds the loop ~30 ms.
_FIFO_BYTES = 128

# The pulse counter units: 0 counts the enable line's edges, 1 decodes the panel's encoder.
_EDGE_UNIT = 0
_ENCODER_UNIT = 1
_ENCODER_FILTER_NS = 12000  # the PCNT's longest glitch filter (1023 cycles at 80 MHz)
_I2C_HZ = 400000  # the SSD1306's and the DS3231's fast mode
_INPUT_ONLY = (34, 35, 36, 37, 38, 39)  # no internal pulls: the encoder module's resistors serve

_ATTEN = {0: ADC.ATTN_0DB, 2.5: ADC.ATTN_2_5DB, 6: ADC.ATTN_6DB, 11: ADC.ATTN_11DB}
_PULL = {"up": Pin.PULL_UP, "down": Pin.PULL_DOWN, "none": None}


class _Input:
    """One contact, decoded to a logical level with the board's electrical sense."""

    __slots__ = ("pin", "active")

    def __init__(self, spec):
        self.pin = Pin(spec["pin"], Pin.IN, _PULL[spec["pull"]])
        self.active = 1 if spec["active"] == "high" else 0

    def read(self):
        return self.pin.value() == self.active


class Hardware:
    """Creates every output already off, then the inputs. `board` is a validated board dict."""

    rtc_memory_free = RTC_MEMORY_FREE  # rtc_memory's bytes from here on are the session's

    def __init__(self, board):
        laser = board["laser"]
        # time.mktime and gmtime count from the port's epoch: 2000 on the ESP32, 1970 elsewhere.
        self._epoch_s = _UNIX_2000_S if time.gmtime(0)[0] == 2000 else 0
        # The enable line first: it gates the driver, so the PWM's start-up state cannot emit.
        self._enable = Pin(laser["enable_pin"], Pin.OUT, value=0)
        self._gate = None  # a PWM on the enable pin while fast pulses are gated in hardware
        self._gate_hz = 0
        # duty_u16=0 is explicit: without it the ESP32 starts PWM at 50 %.
        self._pwm = PWM(Pin(laser["pwm_pin"]), freq=laser["pwm_freq_hz"], duty_u16=0)
        self._duty_u16 = 0
        ind = board["indicators"]
        self._led = Pin(ind["emission_led_pin"], Pin.OUT, value=0)
        self._buzzer = Pin(ind["buzzer_pin"], Pin.OUT, value=0)
        inputs = board["inputs"]
        self._key = _Input(inputs["key"])
        self._interlock = _Input(inputs["interlock"])
        self._estop = _Input(inputs["estop"])
        self._footswitch_no = _Input(inputs["footswitch_no"])
        self._footswitch_nc = _Input(inputs["footswitch_nc"])
        self._arm = _Input(inputs["arm"])
        self._reset = _Input(inputs["reset"])
        self._ack = _Input(inputs["ack"])
        th = board["thermistor"]
        self._adc = ADC(Pin(th["adc_pin"]), atten=_ATTEN[th["atten_db"]])
        self._read_uv = self._adc.read_uv  # bound once: binding a method allocates
        self._enable_sense = None
        self._read_edges = None
        if "enable_sense_pin" in laser:  # the driver's enable input, wired back to a GPIO
            self._enable_sense = Pin(laser["enable_sense_pin"], Pin.IN)
            # A hardware pulse counter on it: while a gate pulses the line, a tick without a
            # rising edge is a line stuck high (a pin read alone samples one moment of a pulse).
            self._edge_counter = Counter(_EDGE_UNIT, self._enable_sense, edge=Counter.RISING)
            self._read_edges = self._edge_counter.value  # bound once: binding allocates
        self._wdt = None
        self._rtc = RTC()
        # What RTC memory holds, as one buffer written in place (keep_rtc_memory): what the last
        # reset left there, or zeros after a power-on.
        self.rtc_memory = bytearray(RTC_MEMORY_BYTES)
        kept = self._rtc.memory()
        for i in range(min(len(kept), RTC_MEMORY_BYTES)):
            self.rtc_memory[i] = kept[i]
        self._buses = {}  # I2C controller -> machine.I2C: the DS3231 and the display may share one
        self._battery_clock = None
        part = board.get("rtc")
        if part is not None:
            from ds3231 import DS3231

            self._battery_clock = DS3231(self._bus(part))
        self.display = None  # the panel's SSD1306 (micropython-lib's driver), where it answers
        self.display_problem = None  # why a board's display is missing, for the boot record
        self._read_steps = None
        self._select = self._back = None
        panel = board.get("panel")
        if panel is not None:
            self._open_panel(panel)
        # Ctrl-C is a byte like any other here: boot.py and main.py turn the interrupt off.
        self._serial = select.poll()
        self._serial.register(sys.stdin, select.POLLIN)
        self._serial_in = sys.stdin.buffer
        self._byte = bytearray(1)
        # Written raw (no "\r" added) with MicroPython's stream write(buf, off, n): no slice, no
        # allocation. The FIFO's fill is estimated from the baud rate and the time since the
        # last write (the chip says nothing about it to Python); a byte counts as sent only once
        # its ten bits have had their time, so the estimate is never below the truth. Whatever
        # the boot printed may still be in the FIFO: it starts full.
        self._serial_out = sys.stdout.buffer.write
        self._bytes_per_s = board["serial"]["baud"] // 10  # 8N1: ten bits a byte
        self._fifo_us = _FIFO_BYTES * 1000000 // self._bytes_per_s + 1  # a full FIFO's time out
        self._fifo = _FIFO_BYTES
        self._fifo_at_us = time.ticks_us()
        self._read_monitor_uv = None
        monitor = board.get("power_monitor")
        if monitor is not None:
            self._monitor_adc = ADC(Pin(monitor["adc_pin"]), atten=_ATTEN[monitor["atten_db"]])
            self._read_monitor_uv = self._monitor_adc.read_uv

    def _bus(self, part):
        bus = self._buses.get(part["i2c"])
        if bus is None:
            bus = I2C(part["i2c"], scl=Pin(part["scl_pin"]), sda=Pin(part["sda_pin"]), freq=_I2C_HZ)
            self._buses[part["i2c"]] = bus
        return bus

    def _open_panel(self, panel):
        """The operator panel: its buttons, its encoder on a pulse counter (no step lost at any
        loop rate), and its display, which init_display clears and switches on. A display that
        does not answer leaves the device without a panel, never without its safety."""
        self._select = _Input(panel["select"])
        self._back = _Input(panel["back"])
        phases = []
        for key in ("encoder_a_pin", "encoder_b_pin"):
            pin = panel[key]
            phases.append(Pin(pin, Pin.IN) if pin in _INPUT_ONLY else
                          Pin(pin, Pin.IN, Pin.PULL_UP))
        self._encoder = Encoder(_ENCODER_UNIT, phases[0], phases[1], filter_ns=_ENCODER_FILTER_NS,
                                phases=1)
        self._read_steps = self._encoder.value  # bound once: binding a method allocates
        # micropython-lib's driver, frozen into the image (firmware/manifest.py); the ESP32 stubs
        # do not cover it.
        import ssd1306  # pyright: ignore[reportMissingImports]

        try:
            self.display = ssd1306.SSD1306_I2C(128, 64, self._bus(panel))
        except OSError as e:
            self.display_problem = "display does not answer on I2C %d (%s): no panel" % (
                panel["i2c"], e)

    def sense(self, inp, now_ms):
        inp.t_ms = now_ms
        inp.key_on = self._key.read()
        inp.interlock_closed = self._interlock.read()
        inp.estop_pressed = self._estop.read()
        inp.footswitch_no_closed = self._footswitch_no.read()
        inp.footswitch_nc_closed = self._footswitch_nc.read()
        inp.arm_pressed = self._arm.read()
        inp.reset_pressed = self._reset.read()
        inp.ack_pressed = self._ack.read()
        samples = inp.thermistor_samples
        for i in range(len(samples)):
            samples[i] = self._read_uv()
        if self._read_monitor_uv is not None:
            inp.monitor_uv = self._read_monitor_uv()
        read_steps, select, back = self._read_steps, self._select, self._back
        if read_steps is not None and select is not None and back is not None:
            inp.encoder_steps = read_steps(0)  # and start counting again
            inp.select_pressed = select.read()
            inp.back_pressed = back.read()
        sense, read_edges = self._enable_sense, self._read_edges
        if sense is not None and read_edges is not None:
            inp.enable_sensed = sense.value() == 1
            inp.enable_edges = read_edges(0)  # and start counting again

    def actuate(self, out):
        """Apply `out`; return the ticks_ms at which it took effect (the dose counts to it)."""
        # Gate off before changing the duty; set the duty before gating on.
        if not out.laser_enable or (self._gate is not None and out.gate_hz != self._gate_hz):
            self._gate_off()
        if out.pwm_duty_u16 != self._duty_u16:
            self._pwm.duty_u16(out.pwm_duty_u16)
            self._duty_u16 = out.pwm_duty_u16
        if out.laser_enable:
            if out.gate_hz == 0:
                self._enable.value(1)
            elif self._gate is None:
                # Allocates, once per emission start: the pulses' hardware timer on the enable
                # pin, created with its duty (never the ESP32's 50 % default).
                self._gate = PWM(self._enable, freq=out.gate_hz, duty_u16=out.gate_duty_u16)
                self._gate_hz = out.gate_hz
        applied_ms = time.ticks_ms()
        self._led.value(1 if out.emission_led else 0)
        self._buzzer.value(1 if out.buzzer else 0)
        return applied_ms

    def _gate_off(self):
        if self._gate is None:
            self._enable.value(0)
            return
        try:
            self._gate.deinit()  # its output goes low
        finally:
            self._gate = None
            self._gate_hz = 0
            self._enable.init(Pin.OUT, value=0)  # a plain output, low, whatever deinit did

    def check_shutdown_path(self):
        """The boot self-test of the emission gate, with the PWM at 0 (no current, no light):
        the enable line must read back low, high, then low again at the driver. Returns None or
        what failed; None also where the board has no sense pin (nothing to read back)."""
        sense = self._enable_sense
        if sense is None:
            return None
        self._pwm.duty_u16(0)
        self._duty_u16 = 0
        problem = None
        for level in (0, 1, 0):
            self._enable.value(level)
            if sense.value() != level:
                problem = "enable line reads %d when driven %d" % (sense.value(), level)
                break
        self._enable.value(0)
        return problem

    def read_serial_byte(self):
        """The next byte waiting on the serial port, or -1 if none is (allocates nothing)."""
        serial = self._serial
        if serial is None:
            return -1
        for _, events in serial.ipoll(0):
            if events & select.POLLIN and self._serial_in.readinto(self._byte) == 1:
                return self._byte[0]
            if events & (select.POLLHUP | select.POLLERR | select.POLLIN):
                self._serial = None  # end of input (a host pipe closed): nothing more to read
        return -1

    def write_serial(self, buf, off, n, wait=False):
        """Write bytes off..off+n of `buf` to the serial port; return how many were written:
        only as many as the UART's FIFO takes now, unless `wait` (all of them, waiting for the
        UART as the chip does: only where no loop has to keep time). Allocates nothing."""
        now = time.ticks_us()
        fifo, bps = self._fifo, self._bytes_per_s
        elapsed = time.ticks_diff(now, self._fifo_at_us)
        sent = elapsed * bps // 1000000 if 0 <= elapsed < self._fifo_us else fifo
        if sent >= fifo:  # empty (elapsed < 0: more than 2**29 us ago): the line is idle from now
            fifo = 0
            self._fifo_at_us = now
        elif sent:  # the clock moves on by those bytes' time, rounded up: never ahead of the line
            fifo -= sent
            self._fifo_at_us = time.ticks_add(self._fifo_at_us,
                                              (sent * 1000000 + bps - 1) // bps)
        if not wait and n > _FIFO_BYTES - fifo:
            n = _FIFO_BYTES - fifo
        if n <= 0:
            self._fifo = fifo
            return 0
        self._serial_out(buf, off, n)
        if wait and fifo + n > _FIFO_BYTES:
            self._fifo_at_us = time.ticks_us()  # it returned as the last bytes went in
        self._fifo = min(_FIFO_BYTES, fifo + n)
        return n

    def wall_clock_s(self):
        """Seconds since 1970-01-01 UTC by the chip's RTC, or None while it is not known (not set
        since the last power-on). Allocates: for records and replies, not for every tick."""
        if self.rtc_memory[:3] != _CLOCK_SET:
            return None
        t = self._rtc.datetime()  # (year, month, day, weekday, hour, min, sec, subsec)
        return time.mktime((t[0], t[1], t[2], t[4], t[5], t[6], 0, 0)) + self._epoch_s

    def set_wall_clock(self, utc_s):
        """Set the RTC to `utc_s` (seconds since 1970-01-01 UTC): known from now on, until the
        next power cut; and the battery-backed clock, where the board has one, which keeps it
        through power cuts. Returns None, or why the battery-backed clock was not set."""
        t = time.gmtime(utc_s - self._epoch_s)  # (year, month, day, hour, min, sec, weekday, ..)
        self._set_rtc(t)
        if self._battery_clock is None:
            return None
        try:
            self._battery_clock.set_datetime(t[:6], t[6])
        except OSError as e:
            return "DS3231 does not answer (%s): it keeps its old time" % e
        return None

    def restore_wall_clock(self):
        """At boot: where the RTC lost the time (a power cut) and the board has a battery-backed
        clock, take the time from it. Returns None, or why the time is still unknown."""
        clock = self._battery_clock
        if clock is None or self.rtc_memory[:3] == _CLOCK_SET:
            return None
        try:
            t = clock.datetime()
        except OSError as e:
            return "DS3231 does not answer (%s): the time is unknown until a host sets it" % e
        if t is None:
            return "DS3231 has no time to trust (its oscillator stopped): a host must set it"
        self._set_rtc(time.gmtime(time.mktime(t + (0, 0))))  # the weekday, from the date
        return None

    def _set_rtc(self, t):
        """The RTC to the time `t` (time.gmtime's tuple, in the port's epoch), marked set."""
        self._rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
        memory = self.rtc_memory
        for i in range(3):
            memory[i] = _CLOCK_SET[i]
        self.keep_rtc_memory()

    def keep_rtc_memory(self):
        """Write `rtc_memory` to the RTC memory (allocates nothing): kept through a soft or a
        watchdog reset, lost at a power cut."""
        self._rtc.memory(self.rtc_memory)

    def restart(self):
        """Reset the chip (the service's restart, to apply new settings through a boot)."""
        self.safe_off()
        reset()

    def maintenance_button_held(self):
        """The reset button held through boot asks for a maintenance boot."""
        return self._reset.read()

    def start_watchdog(self, timeout_ms):
        """Start the hardware watchdog (it cannot be stopped again, not even by a soft reset)."""
        self._wdt = WDT(timeout=timeout_ms)

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()

    def safe_off(self):
        """Emission off, indicators off; return the ticks_ms at which the light went off. Safe
        to call from any error path, any number of times: each step runs even if an earlier one
        raised."""
        try:
            self._gate_off()
        finally:
            try:
                self._pwm.duty_u16(0)
                self._duty_u16 = 0
            finally:
                self._led.value(0)
                self._buzzer.value(0)
        return time.ticks_ms()


def device_id():
    """The chip's own identity (machine.unique_id(): the ESP32's factory MAC) as hex text: what
    status, the boot records and the journal's export name the device by."""
    return hexlify(unique_id()).decode()


def reset_by_watchdog():
    """Whether the watchdog caused the last reset (then main.py starts in FAULT)."""
    return reset_cause() == WDT_RESET


def boot_safe(path="board.json"):
    """Called first thing by boot.py: gate the laser off before anything else runs.

    If the board file cannot be read the pins are unknown, and the hardware pull-downs on the
    enable and PWM lines are what keep the laser off (docs/hardware.md, the safety chain)."""
    import board as board_file  # here only: the loop never needs the board's checks (app.py)

    try:
        board = board_file.load(path)
    except board_file.BoardError as e:
        from link import dumps, send_line

        send_line(dumps({"ev": "error", "where": path,
                         "error": "boot: laser lines left to their pull-downs: %s" % e}))
        return None
    heap.collect()  # the board file's parse is garbage: what the pins leave goes low in the heap
    return Hardware(board)
