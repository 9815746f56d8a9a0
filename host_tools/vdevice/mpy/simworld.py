# The virtual device's world, run inside the real MicroPython interpreter next to the firmware:
# a virtual clock, the electrical level of every pin, and a plant model (diode optics and heat,
# junction -> heatsink -> ambient with a fan that can fail, thermistor divider, ADC, operator
# inputs, injected faults). The simulated `machine` and `time` modules are thin views of this
# object. Virtual time advances only when the firmware sleeps (scenario mode, as fast as the host
# allows) or with the wall clock (real-time mode, for people and mpremote).
import binascii
import json
import math

import calibration
import sim_display
import utime
from calibration import pwm_resolution_bits

# ESP32 ticks_ms and ticks_us wrap at 2**30 (the 64-bit unix port's at 2**62). The mask, unlike
# 2**30 itself, is a small int on the chip interpreter, whose small ints end at 2**30 - 1: past
# them every result is a big int, a heap allocation.
TICKS_MASK = (1 << 30) - 1
TICKS_HALF = 1 << 29
_KELVIN = 273.15
_TRACE_TEMP_EVERY_US = 1000000
_ADC_FULL_SCALE_UV = {0: 1100000, 2.5: 1500000, 6: 2200000, 11: 3100000}
_ADC_FLOOR_UV = 100000  # the ESP32 ADC reads 0 below about 100 mV
_SUBSTEP_US = 10000  # the thermal plant's longest integration step (10 ms of virtual time)
# Plant faults, then faults of the computer and the firmware itself (see inject_fault).
FAULTS = ("thermistor_open", "thermistor_short", "thermistor_stuck", "fan_failure",
          "enable_stuck", "power_cut", "loop_hang", "slow_ticks", "firmware_exception",
          "memory_exhaustion", "dose_count_bug", "firmware_tampered", "board_corrupted")
_HANG_US = 5000000  # loop_hang: a read that never returns within the watchdog's time
_SLOW_TICK_US = 15000  # slow_ticks: every tick takes this much longer ...
_SLOW_FOR_US = 2000000  # ... for this long
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


def _next_noise(seed):
    """The ADC noise's generator: seed * 1103515245 + 12345 modulo 2**30 (the C library's LCG,
    its low 30 bits), in 15-bit halves so that no product passes the chip's small ints."""
    lo, hi = seed & 0x7FFF, seed >> 15
    # 1103515245 modulo 2**30 is 908 * 2**15 + 20077
    cross = (((908 * lo) & 0x7FFF) + ((20077 * hi) & 0x7FFF)) & 0x7FFF
    return ticks_add(ticks_add(cross << 15, 20077 * lo), 12345)


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


class _NoTrace:
    """A trace list that keeps nothing (World.drop_trace)."""

    def append(self, value):
        pass


_NO_TRACE = _NoTrace()


class SimEnd(BaseException):
    """The scenario's end: unwinds the firmware like a power cut (its `finally` still runs)."""


class HardReset(BaseException):
    """machine.reset(), the watchdog or a power cut: the launcher runs boot.py and main.py
    again."""


class SoftReset(BaseException):
    """machine.soft_reset()."""


def load_table(path):
    """A thermistor R-T table (CSV: temp_c,resistance_ohm) as [(1/T kelvin, ln R)], T rising."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] == "#" or line[0].isalpha():
                continue
            t, r = line.split(",")
            rows.append((1.0 / (float(t) + _KELVIN), math.log(float(r))))
    rows.sort(key=lambda row: -row[0])
    return rows


def table_ohm(table, temp_c):
    """Resistance at temp_c: linear in ln R versus 1/T between the datasheet's points."""
    x = 1.0 / (temp_c + _KELVIN)
    for i in range(1, len(table)):
        if x >= table[i][0] or i == len(table) - 1:
            x0, y0 = table[i - 1]
            x1, y1 = table[i]
            return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


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
        self._stall_us = 0  # loop_hang: the next input read takes this long
        self._slow_until_us = 0  # slow_ticks: until then every tick's input read is slow
        self._raise_next = None  # firmware_exception / memory_exhaustion: the next read raises
        self._hog = None  # memory_exhaustion: the heap, held until the firmware sleeps again
        # The plant's record, flat lists of small integers (and of objects that already exist),
        # each time as two, whole seconds and microseconds (one would pass the chip's small ints
        # after 17.9 minutes):
        #   optical      t_s, t_us, microwatts, ...                  (at every change)
        #   temperature  t_s, t_us, heatsink mC, junction mC, ...    (every second)
        #   inputs       t_s, t_us, name, value, ...                 (inputs, "fault", "ambient_c")
        #   resets       (t_s, t_us, cause), ...
        #   display      t_s, t_us, changes, ...  (each screen a person saw: see _record_display)
        # A list of tuples and floats would scatter long-lived objects over the heap: between them
        # the float garbage of the plant leaves holes too small for the list to grow into, and a
        # firmware that changes its power every tick (derating) runs out of memory.
        self.trace = {"inputs": [], "optical": [], "temperature": [], "resets": [],
                      "display": []}
        self.emitted_j = 0.0
        self._init_plant(config, board)
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

    # -- plant ---------------------------------------------------------------------------------

    def _init_plant(self, config, board):
        plant = board["plant"]
        self.cal = calibration.for_board(board)
        self.table = load_table(config["table_path"])
        self.ambient_c = float(config.get("ambient_c", 25.0))
        # Two thermal nodes: the diode junction and the heatsink the thermistor sits on.
        self.junction_c = self.heatsink_c = self.ambient_c
        # _integrate's state: distances from the steady state, and what it last wrote.
        self._dj = self._dh = self._sink_ss = self._junction_ss = 0.0
        self._junction_out = self._sink_out = None
        self._ss_heat = self._ss_ambient = self._ss_r_ambient = None  # what _sink_ss was for
        self._emitted_error_j = 0.0
        self.c_junction = float(plant["junction_capacity_j_per_c"])
        self.r_junction = float(plant["junction_to_heatsink_c_per_w"])
        self.c_heatsink = float(plant["heatsink_capacity_j_per_c"])
        self.r_fan_on = float(plant["heatsink_to_ambient_c_per_w"])
        self.r_fan_off = float(plant["heatsink_to_ambient_fan_off_c_per_w"])
        self.r_ambient = self.r_fan_on
        self.fan_running = True
        self.electrical_full_w = float(plant["electrical_w_at_full_duty"])
        for duty, watts in board["diode"]["calibration"]:
            if watts > self.electrical_full_w * duty / 65535:
                raise ValueError("plant.electrical_w_at_full_duty: the diode would emit more light "
                                 "(%g W at duty %d) than the electrical power it takes"
                                 % (watts, duty))
        self._propagators = {}  # step_us -> exp(A * step) for the present fan state
        self.noise_uv = plant.get("adc_noise_uv", 0)
        self._seed = 12345
        self.optical_w = 0.0
        self.peak_w = 0.0
        self.degradation = 1.0
        self.monitor = board.get("power_monitor")  # a photodiode seeing the diode's light
        self._gate = None  # (period us, on us, start us) while the enable line is a PWM
        self.electrical_w = 0.0
        self.heat_w = 0.0
        self.thermistor_fault = None  # None or one of the thermistor_* FAULTS
        self._adc_last_uv = None  # what the thermistor's ADC channel returned last
        self._segment = 1  # the thermistor table's segment of the last reading
        # thermistor_uv's node voltage, its floor, and the heatsink temperature it is for
        self._ntc_uv, self._ntc_uv_floor, self._ntc_at_c = 0.0, 0, None
        self._monitor_uv_floor, self._monitor_at_w = 0, None  # the same for the photodiode
        self.max_true_c = self.heatsink_c
        self.max_junction_c = self.junction_c
        self._next_temp_trace_us = 0
        th = board["thermistor"]
        self.adc_atten_db = th.get("atten_db", 11)
        self.adc_pin = th["adc_pin"]
        div = th["divider"]
        self.supply_uv = div["supply_v"] * 1e6
        self.fixed_ohm = div["fixed_ohm"]
        self.ntc_bottom = div["ntc"] == "bottom"
        self.enable_pin = board["laser"]["enable_pin"]
        self.enable_sense_pin = board["laser"].get("enable_sense_pin")
        self.enable_stuck = False  # the driver's enable input held high (a shorted transistor)
        self.pwm_pin = board["laser"]["pwm_pin"]
        self.pins = {}
        for name, spec in board["inputs"].items():
            self.pins[name] = (spec["pin"], 1 if spec["active"] == "high" else 0)

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

    def _integrate(self, dt_us):
        """Advance the plant by dt_us with the present heat, ambient and fan.

        The two nodes are a linear system, dT/dt = A T + b, with constant inputs over the step:
        the exact solution is T_steady + exp(A t) (T - T_steady), for a step of any length. The
        maxima are sampled at least every 10 ms: the heatsink can peak inside a long step, as
        the junction's stored heat drains into it after the diode goes dark.

        The state carried from step to step is each node's distance from its steady state, which
        decays by multiplication: in the chip interpreter's single floats a temperature stored
        whole would stop moving once a step's change fell under half its last digit (about
        0.02 C short of the steady state here), a distance keeps its precision as it shrinks."""
        # (Floats are heap objects on the 64-bit interpreter: what needs none is not worked out,
        # so that the simulator's garbage does not set the pace of the firmware's collections.)
        if self._gate is not None:  # light only while the gate PWM is high: its exact on-time
            self._add_emitted(self.peak_w * self._gate_on_us(self.now_us + dt_us) / 1e6)
        elif self.optical_w:
            self._add_emitted(self.optical_w * dt_us / 1e6)
        heat, ambient_c, r_ambient = self.heat_w, self.ambient_c, self.r_ambient
        if heat is self._ss_heat and ambient_c is self._ss_ambient and \
                r_ambient is self._ss_r_ambient:
            sink_ss, junction_ss = self._sink_ss, self._junction_ss
        else:
            sink_ss = ambient_c + heat * r_ambient
            junction_ss = sink_ss + heat * self.r_junction
            self._ss_heat, self._ss_ambient, self._ss_r_ambient = heat, ambient_c, r_ambient
        if self.junction_c is not self._junction_out or self.heatsink_c is not self._sink_out:
            # Set from outside (a test, the first step): the distances start from there.
            self._dj = self.junction_c - junction_ss
            self._dh = self.heatsink_c - sink_ss
        elif sink_ss != self._sink_ss or junction_ss != self._junction_ss:
            # New inputs: the same temperatures, measured from the new steady state.
            self._dj += self._junction_ss - junction_ss
            self._dh += self._sink_ss - sink_ss
        self._sink_ss, self._junction_ss = sink_ss, junction_ss
        dj, dh = self._dj, self._dh
        while dt_us > 0:
            step = _SUBSTEP_US if dt_us > _SUBSTEP_US else dt_us
            dt_us -= step
            m = self._propagators.get(step)
            if m is None:
                m = self._propagator(step)
            dj, dh = m[0] * dj + m[1] * dh, m[2] * dj + m[3] * dh
            self.junction_c = self._junction_out = junction_c = junction_ss + dj
            self.heatsink_c = self._sink_out = heatsink_c = sink_ss + dh
            if heatsink_c > self.max_true_c:
                self.max_true_c = heatsink_c
            if junction_c > self.max_junction_c:
                self.max_junction_c = junction_c
        self._dj, self._dh = dj, dh

    def _add_emitted(self, energy_j):
        """emitted_j += energy_j, compensated (Kahan): in single floats a plain sum of thousands
        of 10 ms steps drifts by hundredths of a joule over a treatment."""
        y = energy_j - self._emitted_error_j
        total = self.emitted_j + y
        self._emitted_error_j = (total - self.emitted_j) - y
        self.emitted_j = total

    def _propagator(self, step_us):
        """exp(A t) of the junction/heatsink system for t = step_us, from A's two eigenvalues
        (real, negative and distinct for any positive capacities and resistances)."""
        g = 1.0 / self.r_junction
        h = 1.0 / self.r_ambient
        a11 = -g / self.c_junction
        a12 = g / self.c_junction
        a21 = g / self.c_heatsink
        a22 = -(g + h) / self.c_heatsink
        mean = (a11 + a22) / 2
        spread = math.sqrt(((a11 - a22) / 2) ** 2 + a12 * a21)
        l1, l2 = mean + spread, mean - spread
        t = step_us / 1e6
        e1, e2 = math.exp(l1 * t), math.exp(l2 * t)
        d = l1 - l2
        m = ((e1 * (a11 - l2) - e2 * (a11 - l1)) / d, (e1 - e2) * a12 / d,
             (e1 - e2) * a21 / d, (e1 * (a22 - l2) - e2 * (a22 - l1)) / d)
        if len(self._propagators) >= 32:
            self._propagators = {}
        self._propagators[step_us] = m
        return m

    def _update_optics(self):
        duty = self.pwm.get(self.pwm_pin, (0, 0, 0))[0]
        gate = self.pwm.get(self.enable_pin)  # the enable line driven by a PWM: pulses
        self._gate = None
        self.peak_w = self.cal.watts(duty) * self.degradation
        if self.enable_stuck or (gate is None and self.outputs.get(self.enable_pin) == 1):
            # Enabled continuously; stuck, the driver's enable input stays high whatever the gate
            # PWM does: the diode runs at the peak (the current set-point), not the gated average.
            watts = self.peak_w
            # The driver's current flows below the lasing threshold too: heat without light.
            self.electrical_w = self.electrical_full_w * duty / 65535
        elif gate is not None and gate[0]:
            period_us = 1e6 / gate[1]
            fraction = gate[0] / 65536
            self._gate = (period_us, period_us * fraction, gate[2])
            watts = self.peak_w * fraction
            self.electrical_w = self.electrical_full_w * duty / 65535 * fraction
        else:
            watts = 0.0
            self.electrical_w = 0.0
        self.heat_w = self.electrical_w - watts
        if watts != self.optical_w:
            self.optical_w = watts
            record = self.trace["optical"]
            self._stamp(record)
            record.append(round(watts * 1e6))

    def _gate_on_us(self, end_us):
        """Microseconds the gate PWM is high between now and end_us (it starts high)."""
        period, on, start = self._gate

        def high_until(t):
            x = t - start
            whole = math.floor(x / period)
            return whole * on + min(x - whole * period, on)

        return high_until(end_us) - high_until(self.now_us)

    def _photodiode_uv(self):
        """The monitor's amplifier output for the light now (it averages fast pulses): the
        board's calibration read backwards, i.e. a sensor exactly as calibrated."""
        points = self.monitor["calibration"]
        watts = self.optical_w
        for i in range(1, len(points)):
            (uv0, w0), (uv1, w1) = points[i - 1], points[i]
            if watts <= w1 or i == len(points) - 1:
                return uv0 + (uv1 - uv0) * (watts - w0) / (w1 - w0)

    def inject_fault(self, name):
        if name not in FAULTS:
            raise ValueError("unknown fault %r" % name)
        if name in _COMPUTER_FAULTS:
            getattr(self, "_" + name)()
            return
        if name == "fan_failure":
            self.fan_running = False
            self.r_ambient = self.r_fan_off
            self._propagators = {}
            return
        if name == "thermistor_stuck" and self._adc_last_uv is None:
            self.adc_uv(self.adc_pin, self.adc_atten_db)  # nothing read yet: freeze today's value
        self.thermistor_fault = name

    # -- faults of the computer and of the firmware ----------------------------------------------

    def _enable_stuck(self):
        self.enable_stuck = True
        self._update_optics()
        self._levels_changed()

    def _power_cut(self):
        """Power lost: every output dies at once, the RTC and its memory too; the chip starts
        again from power-on."""
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

    def _loop_hang(self):
        self._stall_us = _HANG_US

    def _slow_ticks(self):
        self._slow_until_us = self.now_us + _SLOW_FOR_US

    def _firmware_exception(self):
        self._raise_next = OSError("injected: the input read failed")

    def _memory_exhaustion(self):
        self._raise_next = MemoryError

    def _dose_count_bug(self):
        """A bug in the state machine: it never sees the dose reached. Patched into the loaded
        firmware (a reset loads it afresh); only the supervisor's own budget can stop the light."""
        import sys

        sys.modules["controller"].Controller._dose_reached = lambda self, dosimeter: False

    def _firmware_tampered(self):
        """main.py changed after deployment: firmware on the filesystem in every image (a frozen
        image keeps its modules in flash, out of a file's reach)."""
        with open("main.py", "a") as f:
            f.write("# changed after deployment\n")

    def _board_corrupted(self):
        with open("board.json") as f:
            text = f.read()
        with open("board.json", "w") as f:
            f.write(text[: len(text) // 2])  # a write cut short

    def read_stall(self):
        """Called on every read of the key input (once per tick): the computer faults that show
        as a read that takes too long, or fails."""
        if self._stall_us:
            stall, self._stall_us = self._stall_us, 0
            self._advance_to(self.now_us + stall)  # the watchdog may reset the chip meanwhile
        if self.now_us < self._slow_until_us:
            self._advance_to(self.now_us + _SLOW_TICK_US)
        if self._raise_next is not None:
            error, self._raise_next = self._raise_next, None
            if error is MemoryError:
                self._exhaust_heap()
            raise error

    def _exhaust_heap(self):
        """Fill the heap, so that the firmware's error path runs short of memory; sleep_us gives
        it back. One 4 KB block is left free: the simulated pins allocate where the chip's do not,
        and the outputs must still be switchable as on the chip."""
        hog, block = [], 4096
        while block >= 16:
            try:
                hog.append(bytearray(block))
            except MemoryError:
                block //= 2
        if hog and len(hog[0]) == 4096:
            hog.pop(0)
        self._hog = hog

    def thermistor_uv(self):
        """The divider's node voltage: the thermistor at the heatsink's temperature. Worked out
        once for each heatsink temperature the plant reaches (the firmware reads several samples
        a tick, and the temperature moves only when virtual time does): the simulator's floats
        would otherwise fill the heap several times faster than the firmware's own garbage, and
        the firmware's gc.threshold would collect for the simulator (docs/chip.md)."""
        fault = self.thermistor_fault
        if fault == "thermistor_open":  # infinite resistance
            return self.supply_uv if self.ntc_bottom else 0.0
        if fault == "thermistor_short":  # zero resistance
            return 0.0 if self.ntc_bottom else self.supply_uv
        heatsink_c = self.heatsink_c
        if heatsink_c is not self._ntc_at_c:  # a new temperature (also one a test set)
            r = self._thermistor_ohm()
            if self.ntc_bottom:
                uv = self.supply_uv * r / (self.fixed_ohm + r)
            else:
                uv = self.supply_uv * self.fixed_ohm / (self.fixed_ohm + r)
            self._ntc_uv, self._ntc_uv_floor, self._ntc_at_c = uv, math.floor(uv), heatsink_c
        return self._ntc_uv

    def _thermistor_ohm(self):
        """table_ohm at the heatsink's temperature, the search starting from the last segment
        (the temperature moves slowly)."""
        table = self.table
        x = 1.0 / (self.heatsink_c + _KELVIN)
        i = self._segment
        while i > 1 and x >= table[i - 1][0]:
            i -= 1
        while i < len(table) - 1 and x < table[i][0]:
            i += 1
        self._segment = i
        x0, y0 = table[i - 1]
        x1, y1 = table[i]
        return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))

    def adc_uv(self, pin, atten_db):
        if self.monitor is not None and pin == self.monitor["adc_pin"]:
            optical_w = self.optical_w
            if optical_w is not self._monitor_at_w:
                self._monitor_uv_floor = math.floor(self._photodiode_uv())
                self._monitor_at_w = optical_w
            return self._convert(self._monitor_uv_floor, atten_db)
        if pin != self.adc_pin:
            return self._convert(0, atten_db)
        fault = self.thermistor_fault
        if fault == "thermistor_stuck":
            return self._adc_last_uv
        uv = self.thermistor_uv()
        floor_uv = self._ntc_uv_floor if fault is None else math.floor(uv)
        self._adc_last_uv = self._convert(floor_uv, atten_db)
        return self._adc_last_uv

    def _convert(self, floor_uv, atten_db):
        """The ESP32 ADC on a node at uv (given as floor(uv), an int: the fraction cannot change
        the result): noise, the 100 mV floor, full scale, 1 mV steps. Integers only, so that a
        reading allocates nothing."""
        if self.noise_uv:
            self._seed = _next_noise(self._seed)
            floor_uv += ((self._seed >> 8) % (2 * self.noise_uv + 1)) - self.noise_uv
        if floor_uv < _ADC_FLOOR_UV:  # uv < floor exactly when floor(uv) < floor (an int)
            return 0
        full = _ADC_FULL_SCALE_UV[atten_db]
        if floor_uv >= full:
            return full
        return (floor_uv + 500) // 1000 * 1000  # millivolt resolution, like read_uv() on the chip

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
            self.ambient_c = float(value)
        elif name == "fault":
            self.inject_fault(value)
        elif name == "serial":
            if self._serial is None:
                raise ValueError("serial events need the scenario runner's serial pipe")
            self._serial.write(value.encode() + b"\n")  # unbuffered: in the pipe at once
        elif name == "diode_degraded":  # the diode's light at any current scales by this factor
            self.degradation = float(value)
            self._update_optics()
        else:
            raise ValueError("unknown input %r" % name)

    def _drive(self, name, active):
        pin, active_level = self.pins[name]
        self.driven[pin] = active_level if active else 1 - active_level
        self._levels_changed()

    def pin_level(self, pin, pull):
        if pin == self.pins["key"][0]:
            self.read_stall()
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
            if self.enable_stuck:
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

    def set_output(self, pin, level):
        if self.outputs.get(pin) == level and pin in self.outputs:
            return  # as it was: no edge, the same light (and no float garbage every tick)
        self.outputs[pin] = level
        self._update_optics()
        self._levels_changed()

    def set_pwm(self, pin, duty_u16, freq_hz):
        shift = 16 - pwm_resolution_bits(freq_hz)
        old = self.pwm.get(pin)
        # A new duty takes effect without restarting the period; a new frequency restarts it.
        start = old[2] if old is not None and old[1] == freq_hz else self.now_us
        self.pwm[pin] = ((duty_u16 >> shift) << shift, freq_hz, start)
        self._update_optics()
        self._levels_changed()

    def release_pin(self, pin):
        self.pwm.pop(pin, None)
        self.outputs.pop(pin, None)
        self._update_optics()
        self._levels_changed()

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
        self._update_optics()
        self.trace["resets"].append((self.origin_s + self.now_us // _US, self.now_us % _US,
                                     cause))
        self._reset_us = self.now_us

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
        for key in self.trace:
            self.trace[key] = _NO_TRACE

    def _stamp(self, record):
        """Append the time now to a trace list: whole seconds, microseconds."""
        record.append(self.origin_s + self.now_us // _US)
        record.append(self.now_us % _US)

    def sleep_us(self, us):
        self._hog = None  # memory_exhaustion: the firmware is through its error path
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
                self._advance_to(min(self._wall_us(), target))
        else:
            self._advance_to(target)

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
        self._next_temp_trace_us -= shift
        self._slow_until_us = max(0, self._slow_until_us - shift)
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
        self._update_optics()  # the gate's start

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
                self._advance_to(wall)

    def _advance_to(self, target_us):
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
        if record is _NO_TRACE:
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
        while self.now_us < t_us:
            # Keep a temperature trace at 1 s resolution without slowing long sleeps down.
            chunk_end = min(t_us, self._next_temp_trace_us)
            if chunk_end > self.now_us:
                self._integrate(chunk_end - self.now_us)
                self.now_us = chunk_end
            if self.now_us >= self._next_temp_trace_us:
                record = self.trace["temperature"]
                self._stamp(record)
                record.append(round(self.heatsink_c * 1000))
                record.append(round(self.junction_c * 1000))
                self._next_temp_trace_us += _TRACE_TEMP_EVERY_US
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
        snapshot = {"t_s": self.origin_s + self.now_us / 1e6, "optical_w": self.optical_w,
                    "heatsink_c": round(self.heatsink_c, 2),
                    "junction_c": round(self.junction_c, 2),
                    "fan": self.fan_running, "emitted_j": round(self.emitted_j, 3),
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
        return {"now_s_us": [self.origin_s + self.now_us // _US, self.now_us % _US],
                "emitted_j": self.emitted_j,
                "max_true_c": self.max_true_c, "max_junction_c": self.max_junction_c,
                "uart": self.uart.stats(), "trace": self.trace}


_COMPUTER_FAULTS = FAULTS[4:]
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
