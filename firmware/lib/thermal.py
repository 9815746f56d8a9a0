# Thermal protection, active in every state: the thermistor front end (several ADC samples per
# tick, median), sensor faults, and the temperature levels: warning, derating, shutdown, a
# rate-of-rise limit and a runaway check (the heatsink rising faster than the diode's heat and
# working cooling can explain: a dead fan). Integer arithmetic throughout, so a tick allocates
# nothing.
#
# No operator action restarts a check's evidence: a pause, an arm or a fault reset leaves the
# one-second history and the stuck-reading count as they are. Only evidence does: a sample that
# differs restarts the stuck count, and a reading that was invalid (its history has a gap)
# restarts the history when it becomes valid again.
from array import array

from micropython import const
from thermistor import OK, OPEN, RANGE, SHORT, shared
from ticks import ticks_add, ticks_diff

NORMAL = const(0)
WARNING = const(1)
DERATE = const(2)
LEVEL_NAMES = ("NORMAL", "WARNING", "DERATE")
DERATE_STEPS = const(32)  # power steps between derate start (all of it) and shutdown (none)

OVER_TEMP = "OVER_TEMP"
THERMAL_RATE = "THERMAL_RATE"
THERMAL_RUNAWAY = "THERMAL_RUNAWAY"
THERMISTOR_OPEN = "THERMISTOR_OPEN"
THERMISTOR_SHORT = "THERMISTOR_SHORT"
THERMISTOR_RANGE = "THERMISTOR_RANGE"
THERMISTOR_JUMP = "THERMISTOR_JUMP"
THERMISTOR_STUCK = "THERMISTOR_STUCK"
_SENSOR_FAULTS = {OPEN: THERMISTOR_OPEN, SHORT: THERMISTOR_SHORT, RANGE: THERMISTOR_RANGE}
_SECOND_MS = const(1000)  # the rate and runaway checks work on one sample a second
# The levels and the derating follow a moving average (about 32 ticks, 0.3 s at 10 ms), and a
# level is left only 0.2 C below its threshold, so that ADC noise neither flips the power between
# neighbouring steps nor the operator's display between levels. The limits use the reading itself.
_SMOOTH_SHIFT = const(5)
_LEVEL_HYSTERESIS_MC = const(200)


def _mc(celsius):
    return int(celsius * 1000 + 0.5)


def median(samples, scratch):
    """The median of `samples` (odd count), sorted in the preallocated `scratch`."""
    n = len(samples)
    for i in range(n):
        v = samples[i]
        j = i
        while j > 0 and scratch[j - 1] > v:
            scratch[j] = scratch[j - 1]
            j -= 1
        scratch[j] = v
    return scratch[n // 2]


class ThermalMonitor:
    """`board` is a validated board dict. Call update() once per tick, in every state."""

    def __init__(self, board, now_ms):
        th, limits = board["thermistor"], board["thermal"]
        self.sensor = shared(th)  # the board's one grid; this monitor only reads it
        self._scratch = array("i", [0] * th["samples"])
        self.warning_mc = _mc(limits["warning_c"])
        self.derate_mc = _mc(limits["derate_start_c"])
        self.shutdown_mc = _mc(limits["shutdown_c"])
        self.clear_mc = _mc(limits["shutdown_c"] - limits["hysteresis_c"])
        self.jump_mc = _mc(limits["jump_c"])
        self.stuck_ms = int(limits["stuck_s"] * 1000)
        self._rise_window_s = limits["rise_window_s"]
        self._rise_limit_mc = _mc(limits["max_rise_c_per_s"] * self._rise_window_s)
        # Runaway: over runaway_window_s of emission the heatsink can rise at most
        #   window * (heat - cooling) / capacity, with heat the most the diode made in the window
        #   (treatment.py bounds it), and cooling = (T - room) / R bounded below by the window's
        #   starting temperature and the warmest room the board is specified for.
        # Units: W/C = 1000 uW/mC, J/C = 1000 uJ/mC.
        self._runaway_window_s = limits["runaway_window_s"]
        self._conductance_uw_per_mc = int(1000 / limits["cooling_c_per_w"])
        self._capacity_uj_per_mc = int(limits["heatsink_capacity_j_per_c"] * 1000)
        self._max_ambient_mc = _mc(limits["max_ambient_c"])
        self._runaway_margin_mc = _mc(limits["runaway_margin_c"])
        size = max(self._rise_window_s, self._runaway_window_s) + 1
        self._temp_ring = array("i", [0] * size)  # one reading a second
        self._heat_ring = array("i", [0] * size)  # the heat bound over that second, uW
        self.uv = 0
        self.status = OK
        self.temp_mc = 0  # valid while status == OK
        self.level = NORMAL
        self.derate_step = DERATE_STEPS  # all of the power
        self._have_reading = False  # a valid reading last tick: the history runs on
        self._smooth_mc = 0
        self._seconds = 0  # readings in the rings
        self._next_second_ms = now_ms
        self._heat_uw = 0  # the most heat the diode made since the last one-second reading
        self._last_ms = now_ms  # the last update
        self._stuck_uv = -1  # the raw value every sample has had since ...
        self._stuck_ms = 0  # ... for this much emission

    def update(self, samples, now_ms, heat_uw):
        """Read this tick's ADC samples; `heat_uw` is the diode's heat bound for the power
        commanded last tick (0: not emitting). Return a fault code, or None if all is well."""
        emitting = heat_uw > 0
        uv = median(samples, self._scratch)
        self.uv = uv
        self.status = status = self.sensor.check(uv)
        dt_ms = ticks_diff(now_ms, self._last_ms)
        self._last_ms = now_ms
        if status != OK:
            self._have_reading = False
            self.level, self.derate_step = NORMAL, 0
            return _SENSOR_FAULTS[status]
        temp = self.sensor.temp_mc(uv)
        previous, self.temp_mc = self.temp_mc, temp
        jumped = self._have_reading and abs(temp - previous) > self.jump_mc
        if not self._have_reading:  # the first valid reading, or the first after a gap
            self._smooth_mc = temp
            self._seconds = 0
            self._next_second_ms = now_ms
            self._stuck_uv = -1
        # (+ half a step: >> rounds towards minus infinity, which would settle a little low)
        self._smooth_mc += (temp - self._smooth_mc + (1 << (_SMOOTH_SHIFT - 1))) >> _SMOOTH_SHIFT
        self._have_reading = True
        self._grade(self._smooth_mc)
        if jumped:
            return THERMISTOR_JUMP
        if temp >= self.shutdown_mc:
            return OVER_TEMP
        if heat_uw > self._heat_uw:
            self._heat_uw = heat_uw
        if ticks_diff(now_ms, self._next_second_ms) >= 0:
            fault = self._each_second(temp, now_ms)
            if fault is not None:
                return fault
        if self._stuck(samples, dt_ms if emitting else 0):
            return THERMISTOR_STUCK
        return None

    def cause_gone(self):
        """True when a latched thermal fault may be reset: a valid, cool-enough reading that
        is not the frozen one."""
        return self.status == OK and self.temp_mc < self.clear_mc and \
            self._stuck_ms < self.stuck_ms

    def _grade(self, smooth):
        if smooth >= self.derate_mc:
            level = DERATE
        elif smooth >= self.warning_mc:
            level = WARNING
        else:
            level = NORMAL
        if level < self.level:  # cooler: leave the level only well below its threshold
            threshold = self.derate_mc if self.level == DERATE else self.warning_mc
            if smooth > threshold - _LEVEL_HYSTERESIS_MC:
                level = self.level
        self.level = level
        span = self.shutdown_mc - self.derate_mc
        self.derate_step = min(DERATE_STEPS, max(0, (self.shutdown_mc - smooth) * DERATE_STEPS
                                                 // span))

    def _each_second(self, temp, now_ms):
        self._next_second_ms = ticks_add(now_ms, _SECOND_MS)
        temps, heats = self._temp_ring, self._heat_ring
        size = len(temps)
        slot = self._seconds % size
        temps[slot], heats[slot] = temp, self._heat_uw
        self._seconds += 1
        self._heat_uw = 0
        window = self._rise_window_s
        if self._seconds > window and temp - temps[(slot - window) % size] > self._rise_limit_mc:
            return THERMAL_RATE
        # Runaway, over any window that holds emission, paused or not: the heat it allows is
        # the sum of each second's most heat, so pauses lower it as they lower the real heat.
        # (A window without any is left alone: no heat, no hazard from a dead fan.)
        window = self._runaway_window_s
        if self._seconds > window:
            start = temps[(slot - window) % size]
            heat_uj = 0
            for i in range(window):
                heat_uj += heats[(slot - i) % size]  # uW over one second
            if heat_uj == 0:
                return None
            cooling_uj = window * self._conductance_uw_per_mc * (start - self._max_ambient_mc)
            allowed = (heat_uj - cooling_uj) // self._capacity_uj_per_mc
            if temp - start > allowed + self._runaway_margin_mc:
                return THERMAL_RUNAWAY
        return None

    def _stuck(self, samples, emitting_ms):
        """True once every raw sample has had one value for stuck_s of emission in all. A
        live sensor on a heating diode never does; any sample that differs restarts the count
        (a pause does not: the frozen value would otherwise hide behind the pedal's rhythm)."""
        value = self._stuck_uv
        for i in range(len(samples)):
            if samples[i] != value:
                self._stuck_uv = samples[i]
                self._stuck_ms = 0
                return False
        if self._stuck_ms < self.stuck_ms:
            self._stuck_ms += emitting_ms
        return self._stuck_ms >= self.stuck_ms
