# The virtual device's world, run inside the real MicroPython interpreter next to the firmware:
# a virtual clock, the electrical level of every pin, and a plant model (diode optics and heat,
# heatsink, thermistor divider, operator inputs). The simulated `machine` and `time` modules are
# thin views of this object. Virtual time advances only when the firmware sleeps (scenario mode,
# as fast as the host allows) or with the wall clock (real-time mode, for people and mpremote).
import json
import math

import calibration
import utime
from calibration import pwm_resolution_bits

TICKS_PERIOD = 1 << 30  # ESP32 ticks_ms and ticks_us wrap here, not at the unix port's 2**62
TICKS_HALF = 1 << 29
_KELVIN = 273.15
_TRACE_TEMP_EVERY_US = 1000000
_ADC_FULL_SCALE_UV = {0: 1100000, 2.5: 1500000, 6: 2200000, 11: 3100000}
_ADC_FLOOR_UV = 100000  # the ESP32 ADC reads 0 below about 100 mV


class SimEnd(BaseException):
    """The scenario's end: unwinds the firmware like a power cut (its `finally` still runs)."""


class HardReset(BaseException):
    """machine.reset() or the watchdog: the launcher runs boot.py and main.py again."""


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


class World:
    def __init__(self, config, board):
        self.config = config
        self.board = board
        self.realtime = config.get("realtime", False)
        self.speed = float(config.get("speed", 1.0))  # real-time mode: virtual s per wall s
        self.now_us = 0
        self.clock_offset_ms = config.get("clock_start_ms", 0)
        self.until_us = int(config["until_s"] * 1e6) if "until_s" in config else None
        self._events = [(int(e["at_s"] * 1e6), e["input"], e["value"])
                        for e in config.get("events", ())]
        self._events.sort(key=lambda e: e[0])
        self._next_event = 0
        # Pins: externally driven levels (inputs) and what the firmware drives (outputs).
        self.driven = {}
        self.outputs = {}
        self.pwm = {}  # pin -> [duty_u16 effective, freq]
        self.timers = {}  # Timer -> [due_us, period_us or 0, callback]
        self.wdt_timeout_ms = None
        self.wdt_fed_us = 0
        self.trace = {"inputs": [], "optical": [], "temperature": [], "resets": []}
        self.emitted_j = 0.0
        self._init_plant(config, board)
        for name in ("key", "interlock", "estop", "footswitch", "arm", "reset"):
            self.set_input(name, config.get("initial", {}).get(name, name == "interlock"), False)
        self._real_start_us = utime.ticks_us()
        self._sock = None
        if self.realtime and config.get("control_port"):
            self._open_control(config["control_port"])

    # -- plant ---------------------------------------------------------------------------------

    def _init_plant(self, config, board):
        plant = board["plant"]
        self.cal = calibration.for_board(board)
        self.table = load_table(config["table_path"])
        self.ambient_c = float(config.get("ambient_c", 25.0))
        self.heatsink_c = self.ambient_c
        self.r_th = plant["thermal_resistance_c_per_w"]
        self.tau_s = plant["thermal_tau_s"]
        self.efficiency = plant["wall_plug_efficiency"]
        self.noise_uv = plant.get("adc_noise_uv", 0)
        self._seed = 12345
        self.optical_w = 0.0
        self.max_true_c = self.heatsink_c
        self._next_temp_trace_us = 0
        th = board["thermistor"]
        self.adc_pin = th["adc_pin"]
        div = th["divider"]
        self.supply_uv = div["supply_v"] * 1e6
        self.fixed_ohm = div["fixed_ohm"]
        self.ntc_bottom = div["ntc"] == "bottom"
        self.enable_pin = board["laser"]["enable_pin"]
        self.pwm_pin = board["laser"]["pwm_pin"]
        self.pins = {}
        for name, spec in board["inputs"].items():
            self.pins[name] = (spec["pin"], 1 if spec["active"] == "high" else 0)

    def _integrate(self, dt_us):
        dt_s = dt_us / 1e6
        self.emitted_j += self.optical_w * dt_s
        heat_w = self.optical_w * (1.0 / self.efficiency - 1.0)
        steady_c = self.ambient_c + heat_w * self.r_th
        self.heatsink_c = steady_c + (self.heatsink_c - steady_c) * math.exp(-dt_s / self.tau_s)
        # Exponential approach: the maximum over the step is at one of its ends.
        if self.heatsink_c > self.max_true_c:
            self.max_true_c = self.heatsink_c

    def _update_optics(self):
        duty = self.pwm.get(self.pwm_pin, (0, 0))[0]
        watts = self.cal.watts(duty) if self.outputs.get(self.enable_pin) == 1 else 0.0
        if watts != self.optical_w:
            self.optical_w = watts
            self.trace["optical"].append((self.now_us, watts))

    def thermistor_uv(self):
        r = table_ohm(self.table, self.heatsink_c)
        if self.ntc_bottom:
            uv = self.supply_uv * r / (self.fixed_ohm + r)
        else:
            uv = self.supply_uv * self.fixed_ohm / (self.fixed_ohm + r)
        return uv

    def adc_uv(self, pin, atten_db):
        uv = self.thermistor_uv() if pin == self.adc_pin else 0.0
        if self.noise_uv:
            self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
            uv += ((self._seed >> 8) % (2 * self.noise_uv + 1)) - self.noise_uv
        full = _ADC_FULL_SCALE_UV[atten_db]
        if uv < _ADC_FLOOR_UV:
            return 0
        uv = min(uv, full)
        return int(uv / 1000 + 0.5) * 1000  # millivolt resolution, like read_uv() on the chip

    # -- inputs --------------------------------------------------------------------------------

    def set_input(self, name, value, record=True):
        if name == "footswitch":
            self._drive("footswitch_no", value)
            self._drive("footswitch_nc", not value)
        elif name in self.pins:
            self._drive(name, value)
        elif name == "ambient_c":
            self.ambient_c = float(value)
        else:
            raise ValueError("unknown input %r" % name)
        if record:
            self.trace["inputs"].append((self.now_us, name, value))

    def _drive(self, name, active):
        pin, active_level = self.pins[name]
        self.driven[pin] = active_level if active else 1 - active_level

    def pin_level(self, pin, pull):
        if pin in self.outputs:
            return self.outputs[pin]
        if pin in self.driven:
            return self.driven[pin]
        return 1 if pull == "up" else 0  # floating: the pull decides, else it reads low

    # -- outputs -------------------------------------------------------------------------------

    def set_output(self, pin, level):
        self.outputs[pin] = level
        self._update_optics()

    def set_pwm(self, pin, duty_u16, freq_hz):
        shift = 16 - pwm_resolution_bits(freq_hz)
        self.pwm[pin] = ((duty_u16 >> shift) << shift, freq_hz)
        self._update_optics()

    def release_pin(self, pin):
        self.pwm.pop(pin, None)
        self.outputs.pop(pin, None)
        self._update_optics()

    def reset_pins(self, cause):
        """A reset: every GPIO returns to an input, every PWM and timer stops."""
        self.timers.clear()
        self.pwm.clear()
        self.outputs.clear()
        self._update_optics()
        self.trace["resets"].append((self.now_us, cause))

    # -- time ----------------------------------------------------------------------------------

    def ticks_ms(self):
        self._follow_wall_clock()
        return (self.now_us // 1000 + self.clock_offset_ms) % TICKS_PERIOD

    def ticks_us(self):
        self._follow_wall_clock()
        return (self.now_us + self.clock_offset_ms * 1000) % TICKS_PERIOD

    def sleep_us(self, us):
        if us <= 0:
            return
        target = self.now_us + us
        if self.realtime:
            while self.now_us < target:
                self._poll_control()
                remaining_us = int((target - self._wall_us()) / self.speed)
                if remaining_us > 0:
                    utime.sleep_us(min(remaining_us, 5000))
                self._advance_to(min(self._wall_us(), target))
        else:
            self._advance_to(target)

    def _wall_us(self):
        """Virtual time that real-time mode should have reached by now."""
        return int(utime.ticks_diff(utime.ticks_us(), self._real_start_us) * self.speed)

    def _follow_wall_clock(self):
        if self.realtime:
            wall = self._wall_us()
            if wall > self.now_us:
                self._advance_to(wall)

    def _advance_to(self, target_us):
        events = self._events
        while True:
            due = self._next_timer(target_us)
            if self._next_event < len(events) and events[self._next_event][0] <= target_us and \
                    (due is None or events[self._next_event][0] <= due[0]):
                at_us, name, value = events[self._next_event]
                self._step_to(at_us)
                self._next_event += 1
                self.set_input(name, value)
            elif due is not None:
                self._step_to(due[0])
                self._fire(due[1])
            else:
                break
        self._step_to(target_us)
        self._check_watchdog()

    # -- timers --------------------------------------------------------------------------------

    def start_timer(self, timer, period_us, periodic, callback):
        self.timers[timer] = [self.now_us + period_us, period_us if periodic else 0, callback]

    def stop_timer(self, timer):
        self.timers.pop(timer, None)

    def _next_timer(self, limit_us):
        """(due_us, timer) of the earliest timer due by limit_us, or None."""
        best = None
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
        end = self.until_us is not None and t_us >= self.until_us
        if end:
            t_us = self.until_us
        while self.now_us < t_us:
            # Keep a temperature trace at 1 s resolution without slowing long sleeps down.
            chunk_end = min(t_us, self._next_temp_trace_us)
            if chunk_end > self.now_us:
                self._integrate(chunk_end - self.now_us)
                self.now_us = chunk_end
            if self.now_us >= self._next_temp_trace_us:
                self.trace["temperature"].append((self.now_us, round(self.heatsink_c, 3)))
                self._next_temp_trace_us += _TRACE_TEMP_EVERY_US
        if end:
            raise SimEnd()

    def _check_watchdog(self):
        if self.wdt_timeout_ms is not None and self.now_us - self.wdt_fed_us > \
                self.wdt_timeout_ms * 1000:
            self.reset_pins("watchdog")
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
        return {"t_s": self.now_us / 1e6, "optical_w": self.optical_w,
                "heatsink_c": round(self.heatsink_c, 2), "emitted_j": round(self.emitted_j, 3),
                "led": self.outputs.get(self.board["indicators"]["emission_led_pin"], 0),
                "buzzer": self.outputs.get(self.board["indicators"]["buzzer_pin"], 0),
                "inputs": inputs}

    def result(self):
        return {"now_s": self.now_us / 1e6, "emitted_j": self.emitted_j,
                "max_true_c": self.max_true_c, "trace": self.trace}


WORLD = None
