# A simulated ESP32 `machine` module for the virtual device. It keeps the ESP32 behaviours the
# firmware must survive: PWM starts at 50 % duty when no duty is given and rejects out-of-range
# duty, the ADC reads 0 below ~100 mV with millivolt resolution, a WDT cannot be stopped, GPIO 6-11
# do not exist for you and 34-39 are input-only, without internal pulls. The levels and the plant
# live in simworld.
import simworld
import utime  # calendar arithmetic (gmtime, mktime): the interpreter's own
from simworld import HardReset, SoftReset, last_fall, last_rise, level_at

_FLASH_PINS = (6, 7, 8, 9, 10, 11)
_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
_VALID = tuple(range(0, 40))
_BAD = (20, 24, 28, 29, 30, 31)


def _world():
    return simworld.WORLD


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if id not in _VALID or id in _BAD:
            raise ValueError("invalid pin")
        if id in _FLASH_PINS:
            raise ValueError("pin %d is used by the SPI flash" % id)
        self.id = id
        self._mode = None
        self._pull = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if pull != -1:
            self._pull = pull
        if mode != -1:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self.id in _INPUT_ONLY:
                raise ValueError("pin can only be input")
            self._mode = mode
            w = _world()
            if mode in (Pin.OUT, Pin.OPEN_DRAIN):
                # Re-creating an output on a PWM pin stops the PWM, as on the chip.
                level = w.outputs.get(self.id, 0) if value is None else (1 if value else 0)
                if w.pwm.pop(self.id, None) is not None:
                    w.outputs.pop(self.id, None)  # so that set_output sees a new level: the light
                w.set_output(self.id, level)
            else:
                w.release_pin(self.id)
        elif value is not None:
            self.value(value)

    def value(self, *args):
        w = _world()
        if not args:
            pull = "up" if self._pull == Pin.PULL_UP else "down" if self._pull == Pin.PULL_DOWN \
                else None
            if self.id in _INPUT_ONLY:
                pull = None  # GPIO 34-39 have no pull resistors: the setting does nothing
            return w.pin_level(self.id, pull)
        if self._mode in (Pin.OUT, Pin.OPEN_DRAIN):
            w.set_output(self.id, 1 if args[0] else 0)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, *args):
        return self.value(*args)

    def irq(self, handler=None, trigger=3):
        raise OSError("the virtual device does not simulate pin interrupts")

    def __repr__(self):
        return "Pin(%d)" % self.id


class PWM:
    def __init__(self, dest, *, freq=5000, duty_u16=None, duty_ns=None, duty=None):
        self._pin = dest if isinstance(dest, Pin) else Pin(dest)
        if self._pin.id in _INPUT_ONLY:
            raise ValueError("pin can only be input")
        if not isinstance(freq, int):
            raise TypeError("can't convert %s to int" % type(freq).__name__)
        self._freq = freq
        self._active = True
        _world().outputs.pop(self._pin.id, None)
        # The ESP32 port starts at 50 % duty when none is given: a classic way to fire a laser.
        self.duty_u16(32768 if duty_u16 is None else duty_u16)

    def freq(self, *args):
        if not args:
            return self._freq
        if not 1 <= args[0] <= 40000000:
            raise ValueError("frequency must be from 1Hz to 40MHz")
        self._freq = args[0]
        self.duty_u16(self._duty)
        return None

    def duty_u16(self, *args):
        if not args:
            return self._duty
        duty = args[0]
        if not isinstance(duty, int):
            raise TypeError("can't convert %s to int" % type(duty).__name__)
        if not 0 <= duty <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        if not self._active:
            raise RuntimeError("PWM is inactive")  # the ESP32 port's words
        self._duty = duty
        _world().set_pwm(self._pin.id, duty, self._freq)
        return None

    def deinit(self):
        self._active = False
        _world().release_pin(self._pin.id)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3
    _DB = (0, 2.5, 6, 11)

    def __init__(self, pin, *, atten=None):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin)
        if self._pin.id not in (32, 33, 34, 35, 36, 37, 38, 39, 0, 2, 4, 12, 13, 14, 15, 25, 26,
                                27):
            raise ValueError("invalid pin for ADC")
        self._atten = ADC.ATTN_0DB if atten is None else atten

    def atten(self, atten):
        self._atten = atten

    def read_uv(self):
        return _world().plant.adc_uv(self._pin.id, ADC._DB[self._atten])

    def read_u16(self):
        full = {0: 1100000, 1: 1500000, 2: 2200000, 3: 3100000}[self._atten]
        return min(65535, self.read_uv() * 65535 // full)


class Timer:
    """Soft timer callbacks, as on the ESP32: they run between the firmware's own steps (here:
    inside its sleeps, at their virtual deadlines), never in the middle of a computation."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, **kwargs):
        if not 0 <= id <= 3:
            raise ValueError("Timer id must be 0..3 on the ESP32")
        self.id = id
        if kwargs:
            self.init(**kwargs)

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, callback=None):
        if freq > 0:
            period_us = 1000000 // freq
        elif period > 0:
            period_us = period * 1000
        else:
            raise ValueError("give period (ms) or freq (Hz)")
        _world().start_timer(self, period_us, mode == Timer.PERIODIC, callback)

    def deinit(self):
        _world().stop_timer(self)


def _pcnt_unit(cls, id, unset):
    """The one object of PCNT unit `id` (machine.py's _CounterBase on the ESP32): made once, with
    its attribute `unset` None (not initialised); a unit the other class holds raises
    ValueError("PCNT in use") until a reset."""
    if not isinstance(id, int):
        raise TypeError("id")
    if not 0 <= id < Counter._UNITS:
        raise ValueError("invalid id")
    w = _world()
    self = w.counters.get(id)
    if self is None:
        self = object.__new__(cls)
        setattr(self, unset, None)
        w.counters[id] = self
    elif not isinstance(self, cls):
        raise ValueError("PCNT in use")
    return self


class Counter:
    """The ESP32's pulse counter, machine.Counter of MicroPython 1.28 (a PCNT unit): counts the
    edges of the electrical level at its source pin, as simworld drives it: a plain output's or an
    input contact's changes, each period a PWM begins (it starts high), the enable sense pin's
    driver input (the enable line, or high and still when stuck). An edge at the very instant of
    a read counts at the next read: a read counts the periods begun since the last one.

    As on the chip: one object per unit 0..7 (Counter(id) alone returns it as it is), keyword
    arguments only after the source, init() starts again from 0, a reset or deinit() stops it
    (value() then raises RuntimeError), the glitch filter (filter_ns, at most 1023 cycles of the
    80 MHz clock) drops pulses shorter than itself, and the PCNT driver makes its source pin an
    input with a pull-up: a counter on an output stops the output driving its line, and one on
    a floating pin (other than 34-39, which have no pulls) reads it high."""

    RISING = 1
    FALLING = 2
    UP = 1
    DOWN = 2
    _UNITS = 8  # PCNT_UNIT_MAX on the ESP32

    def __new__(cls, id, *args, **kwargs):
        return _pcnt_unit(cls, id, "_pin")

    def __init__(self, id, *args, **kwargs):
        if self._pin is not None and not (args or kwargs):
            return  # the unit as it is, counting on
        self.init(*args, **kwargs)

    def init(self, src, *, edge=RISING, direction=UP, filter_ns=0):
        pin = src.id if isinstance(src, Pin) else Pin(src).id
        if direction not in (Counter.UP, Counter.DOWN):
            raise ValueError("rising")  # the PCNT's check of the edge action it is given
        w = _world()
        if pin in w.outputs or pin in w.pwm:
            w.release_pin(pin)  # the PCNT makes it an input: it no longer drives its line
        if pin not in _INPUT_ONLY:
            w.pulls[pin] = "up"
        cycles = min(max(0, filter_ns * 80 // 1000), 1023)
        self._filter_x2_ns = cycles * 25  # cycles of 12.5 ns, doubled to stay in integers
        self._edge = edge
        self._sign = 1 if direction == Counter.UP else -1
        self._pin = pin
        self._count = 0
        self._drive = self._seen(w)
        self._lvl = level_at(self._drive, w.now_us)
        self._mark_edges(w.now_us)
        if self not in w.counting:
            w.counting.append(self)

    def deinit(self):
        w = _world()
        if self in w.counting:
            w.counting.remove(self)
        self._pin = None

    def value(self, value=None):
        if self._pin is None:
            raise RuntimeError("not initialised")
        self._sync(_world().now_us)
        count = self._count
        if value is not None:
            self._count = value
        return count

    # -- the edges ---------------------------------------------------------------------------

    def _seen(self, w):
        """The source's drive as the counter sees it: a PWM whose pulses or gaps are shorter
        than the glitch filter is a steady level; a floating pin reads its pull."""
        drive = w.drive(self._pin)
        if drive is None:
            return 1 if w.pulls.get(self._pin) == "up" else 0
        if type(drive) is tuple and self._filter_x2_ns:
            duty, freq = drive[0], drive[1]
            filter_x2 = self._filter_x2_ns * 65536 * freq
            if duty * 2000000000 < filter_x2:
                return 0
            if (65536 - duty) * 2000000000 < filter_x2:
                return 1
        return drive

    def _mark_edges(self, now):
        """Every edge of the present drive up to now, inclusive, is accounted for."""
        if type(self._drive) is tuple:
            self._rise = last_rise(self._drive, now, False)
            self._fall = last_fall(self._drive, now, False)

    def _sync(self, now):
        """Count the present drive's edges since the last sync, up to (not at) now."""
        drive = self._drive
        if type(drive) is not tuple:
            return
        rises = last_rise(drive, now, True) - self._rise
        falls = last_fall(drive, now, True) - self._fall
        if rises > 0:
            self._rise += rises
        else:
            rises = 0
        if falls > 0:
            self._fall += falls
        else:
            falls = 0
        if rises or falls:
            self._lvl = 1 if self._rise > self._fall else 0  # the later of the two
            self._add(rises, falls)

    def _follow(self):
        """simworld: a level may have changed now. A change of the drive is an edge now if the
        level after it differs from the level before it."""
        w = _world()
        drive = self._seen(w)
        if drive == self._drive:
            return
        now = w.now_us
        self._sync(now)
        level = level_at(drive, now)
        if level != self._lvl:
            self._add(level, 1 - level)
            self._lvl = level
        self._drive = drive
        self._mark_edges(now)

    def _add(self, rises, falls):
        n = (rises if self._edge & Counter.RISING else 0) + \
            (falls if self._edge & Counter.FALLING else 0)
        self._count += self._sign * n


class Encoder:
    """The ESP32's quadrature decoder, machine.Encoder of MicroPython 1.28 (a PCNT unit, its
    ports/esp32/modules/machine.py): counts the detents of the panel's rotary encoder as the
    world turns it (World.set_input "encoder"), `phases` counts a detent (one full quadrature
    cycle), up where phase A leads (clockwise, phase_a and phase_b wired as the board says), down
    where phase B does (the two swapped: the count runs backwards). Pins that are not the
    encoder's count nothing. Its contacts do not bounce here: filter_ns is taken and unused.

    As on the chip: Counter and Encoder share the PCNT units (a unit a Counter holds raises
    ValueError("PCNT in use"), and the other way round, until a reset), Encoder(id) alone
    returns the unit as it is, init() starts again from 0, deinit() or a reset stops it
    (value() then raises RuntimeError), and its pins become inputs with the chip's pull-ups."""

    def __new__(cls, id, *args, **kwargs):
        return _pcnt_unit(cls, id, "_pins")

    def __init__(self, id, *args, **kwargs):
        if self._pins is not None and not (args or kwargs):
            return  # the unit as it is, counting on
        self.init(*args, **kwargs)

    def init(self, phase_a, phase_b, phases=1, *, filter_ns=0):
        if phases not in (1, 2, 4):
            raise ValueError("phases")
        a = phase_a.id if isinstance(phase_a, Pin) else Pin(phase_a).id
        b = phase_b.id if isinstance(phase_b, Pin) else Pin(phase_b).id
        w = _world()
        for pin in (a, b):
            if pin in w.outputs or pin in w.pwm:
                w.release_pin(pin)  # the PCNT makes it an input
            if pin not in _INPUT_ONLY:
                w.pulls[pin] = "up"
        wired = w.encoder_pins
        self._sign = 0 if wired is None else 1 if (a, b) == wired else \
            -1 if (b, a) == wired else 0
        self._phases = phases
        self._pins = (a, b)
        self._count = 0
        if self not in w.encoders:
            w.encoders.append(self)

    def deinit(self):
        w = _world()
        if self in w.encoders:
            w.encoders.remove(self)
        self._pins = None

    def value(self, value=None):
        if self._pins is None:
            raise RuntimeError("not initialised")
        count = self._count
        if value is not None:
            self._count = value
        return count

    def phases(self):
        return self._phases

    def _turn(self, detents):
        """simworld: the knob turned by `detents` (clockwise positive) now."""
        self._count += self._sign * self._phases * detents


class RTC:
    """The ESP32's real-time clock and its RTC memory, as the world keeps them: both survive a
    soft or watchdog reset and are lost at a power cut (World.rtc_offset_s, World.rtc_memory).
    Seconds here count from 1970, the unix port's epoch (the ESP32's is 2000: hw.py converts).
    One object, made with this module as the chip's is static: RTC() allocates nothing."""

    def __new__(cls):
        return _RTC

    def datetime(self, datetimetuple=None):
        w = _world()
        now_s = w.origin_s + w.now_us // 1000000
        if datetimetuple is None:
            t = utime.gmtime(now_s + w.rtc_offset_s)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], w.now_us % 1000000)
        d = datetimetuple  # (year, month, day, weekday, hour, minute, second, subseconds)
        w.rtc_offset_s = utime.mktime((d[0], d[1], d[2], d[4], d[5], d[6], 0, 0)) - now_s

    def memory(self, data=None):
        w = _world()
        if data is None:
            return w.rtc_memory_bytes()
        if len(data) > simworld.RTC_MEMORY_BYTES:
            raise ValueError("buffer too long")
        w.set_rtc_memory(data)


_RTC = object.__new__(RTC)


class I2C:
    """An ESP32 I2C controller and what the board wires to its lines: the battery-backed DS3231
    at 0x68 where the world has one (World.ds3231_*), its time and status registers as the
    datasheet has them; the operator panel's SSD1306 display at 0x3C where the board has a panel
    (sim_display, World.display), on the panel's lines. A device answers only on its own lines;
    any other address does not answer (OSError ENODEV, as the ESP32's). Every transfer's time on
    the bus, at `freq`, is added up in the world (World.i2c_bus); no virtual time passes for it.
    Writes to the display allocate nothing, as the chip's driver does not."""

    def __init__(self, id, *, scl, sda, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("invalid id")
        if scl is sda:
            raise ValueError("scl and sda are one pin")
        if freq <= 0:
            raise ValueError("freq")
        self._lines = (scl.id if isinstance(scl, Pin) else Pin(scl).id,
                       sda.id if isinstance(sda, Pin) else Pin(sda).id)
        self._ns_per_bit = 1000000000 // freq

    def scan(self):
        w = _world()
        found = [addr for addr in range(0x08, 0x78) if w.i2c_answers(addr, self._lines)]
        w.i2c_bus(0x78 - 0x08, self._ns_per_bit, 2 * (0x78 - 0x08))
        return found

    def writeto(self, addr, buf, stop=True):
        w = self._device(addr, len(buf), 2)
        if addr == 0x3C:
            display = w.display
            display.begin()
            if display.feed(buf):
                w.display_changed()
        elif len(buf):  # the DS3231: its register pointer, then the registers from there
            self._ds3231_write(w, buf[0], memoryview(buf)[1:])
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        n = 0
        for buf in vector:
            n += len(buf)
        w = self._device(addr, n, 2)
        if addr == 0x3C:
            display = w.display
            display.begin()
            changed = False
            for buf in vector:
                if display.feed(buf):
                    changed = True
            if changed:
                w.display_changed()
        elif n:
            self._ds3231_write(w, vector[0][0], b"".join(vector)[1:])
        return n

    def readfrom_mem(self, addr, memaddr, nbytes):
        # the address and the register written; then the address again, and the bytes read
        w = self._device(addr, 2 + nbytes, 3)
        if addr == 0x3C:  # the display answers a read with its status byte: bit 6, off
            return bytes((0 if w.display.on else 0x40,)) * nbytes
        regs = bytearray(19)
        t = utime.gmtime(w.origin_s + w.now_us // 1000000 + w.ds3231_offset_s)
        for i, value in enumerate((t[5], t[4], t[3], t[6] + 1, t[2], t[1], t[0] % 100)):
            regs[i] = value if i == 3 else (value // 10) << 4 | value % 10
        regs[0x0F] = 0x80 if w.ds3231_stopped else 0
        return bytes(regs[memaddr:memaddr + nbytes])

    def writeto_mem(self, addr, memaddr, buf):
        w = self._device(addr, 1 + len(buf), 2)
        if addr == 0x3C:  # the "register" is the control byte, as in any write to it
            display = w.display
            display.begin()
            _ONE[0] = memaddr
            changed = display.feed(_ONE)
            if display.feed(buf) or changed:
                w.display_changed()
            return
        self._ds3231_write(w, memaddr, buf)

    @staticmethod
    def _ds3231_write(w, memaddr, buf):
        if memaddr == 0 and len(buf) >= 7:
            def bcd(b):
                return (b >> 4) * 10 + (b & 0x0F)

            date = (2000 + bcd(buf[6]), bcd(buf[5] & 0x1F), bcd(buf[4]), bcd(buf[2] & 0x3F),
                    bcd(buf[1]), bcd(buf[0]), 0, 0)
            w.ds3231_offset_s = utime.mktime(date) - (w.origin_s + w.now_us // 1000000)
        elif memaddr == 0x0F and len(buf) >= 1:
            w.ds3231_stopped = bool(buf[0] & 0x80)

    def _device(self, addr, nbytes, conditions):
        """The world, once a transfer of nbytes after the address has taken its time on the bus
        (`conditions`: its start, repeated start and stop conditions); ENODEV, and only the
        address's time, where nothing answers."""
        w = _world()
        if not w.i2c_answers(addr, self._lines):
            w.i2c_bus(1, self._ns_per_bit, 2)
            raise OSError(19)  # ENODEV: no device acknowledged the address
        w.i2c_bus(1 + nbytes, self._ns_per_bit, conditions)
        return w


_ONE = bytearray(1)  # I2C.writeto_mem's control byte


class WDT:
    def __init__(self, id=0, timeout=5000):
        w = _world()
        w.wdt_timeout_ms = timeout
        w.wdt_fed_us = w.now_us

    def feed(self):
        w = _world()
        w.wdt_fed_us = w.now_us
    # No deinit: once started, an ESP32 watchdog cannot be stopped.


def reset():
    w = _world()
    w.reset_pins("machine.reset")
    w.reset_cause = HARD_RESET
    w.wdt_timeout_ms = None
    raise HardReset("machine.reset")


def soft_reset():
    raise SoftReset()


def reset_cause():
    return _world().reset_cause


def freq(*args):
    return 160000000


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

