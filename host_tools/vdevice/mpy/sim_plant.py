# The virtual device's plant, run inside the real MicroPython interpreter next to the firmware:
# the diode's light and heat (junction -> heatsink -> ambient, with a fan that can fail), the
# thermistor on the heatsink with its divider, the photodiode of the power monitor, and the ESP32
# ADC reading them. It knows no pins, timers or clock: the world (simworld) tells it that virtual
# time moved on (advance), what drives the diode now (drive), and asks what an ADC pin reads
# (adc_uv). Its own time, kept only to stamp its trace, counts from the world's beginning.
import math

import calibration

_US = 1000000
_KELVIN = 273.15
_TRACE_TEMP_EVERY_US = 1000000
_ADC_FULL_SCALE_UV = {0: 1100000, 2.5: 1500000, 6: 2200000, 11: 3100000}
_ADC_FLOOR_UV = 100000  # the ESP32 ADC reads 0 below about 100 mV
_SUBSTEP_US = 10000  # the thermal plant's longest integration step (10 ms of virtual time)


class _NoTrace:
    """A trace list that keeps nothing (Plant.drop_trace, World.drop_trace)."""

    def append(self, value):
        pass


NO_TRACE = _NoTrace()


def _next_noise(seed):
    """The ADC noise's generator: seed * 1103515245 + 12345 modulo 2**30 (the C library's LCG,
    its low 30 bits), in 15-bit halves so that no product or sum passes the chip's small ints."""
    lo, hi = seed & 0x7FFF, seed >> 15
    # 1103515245 modulo 2**30 is 908 * 2**15 + 20077
    cross = (((908 * lo) & 0x7FFF) + ((20077 * hi) & 0x7FFF)) & 0x7FFF
    low = 20077 * lo + 12345  # under 2**30: its top 15 bits carry into cross's
    return (((cross + (low >> 15)) & 0x7FFF) << 15) | (low & 0x7FFF)


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


class Plant:
    def __init__(self, board, table_path, ambient_c):
        """The plant of `board` (its "plant", "diode", "thermistor" and "power_monitor"
        sections), the thermistor's R-T table at table_path, in a room at ambient_c."""
        plant = board["plant"]
        self.cal = calibration.for_board(board)
        self.table = load_table(table_path)
        self.ambient_c = float(ambient_c)
        # Two thermal nodes: the diode junction and the heatsink the thermistor sits on.
        self.junction_c = self.heatsink_c = self.ambient_c
        # _integrate's state: distances from the steady state, and what it last wrote.
        self._dj = self._dh = self._sink_ss = self._junction_ss = 0.0
        self._junction_out = self._sink_out = None
        self._ss_heat = self._ss_ambient = self._ss_r_ambient = None  # what _sink_ss was for
        self.emitted_j = 0.0
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
        # While the enable line is a PWM: (period us, on us), and how far into its present period
        # the plant's now is (us, as the world last said, since moved on with the plant).
        self._gate = None
        self._gate_age_us = 0
        self.electrical_w = 0.0
        self.heat_w = 0.0
        self.enable_stuck = False  # the driver's enable input held high (a shorted transistor)
        self.thermistor_fault = None  # None or a thermistor fault: sim_faults.FAULTS
        self._adc_last_uv = None  # what the thermistor's ADC channel returned last
        self._segment = 1  # the thermistor table's segment of the last reading
        # thermistor_uv's node voltage, its floor, and the heatsink temperature it is for
        self._ntc_uv, self._ntc_uv_floor, self._ntc_at_c = 0.0, 0, None
        self._monitor_uv_floor, self._monitor_at_w = 0, None  # the same for the photodiode
        self.max_true_c = self.heatsink_c
        self.max_junction_c = self.junction_c
        th = board["thermistor"]
        self.adc_atten_db = th.get("atten_db", 11)
        self.adc_pin = th["adc_pin"]
        div = th["divider"]
        self.supply_uv = div["supply_v"] * 1e6
        self.fixed_ohm = div["fixed_ohm"]
        self.ntc_bottom = div["ntc"] == "bottom"
        # The plant's time since the world began, whole seconds and microseconds (each stays a
        # small int on the chip), and how long until the next temperature sample (at once: the
        # first is taken as time first moves).
        self._s = self._us = 0
        self._temp_due_us = 0
        # The plant's record (simworld.World.trace), flat lists of small integers, each time as
        # two, whole seconds and microseconds (one would pass the chip's small ints after 17.9
        # minutes):
        #   optical      t_s, t_us, microwatts, ...                  (at every change)
        #   temperature  t_s, t_us, heatsink mC, junction mC, ...    (every second)
        # A list of tuples and floats would scatter long-lived objects over the heap: between them
        # the float garbage of the plant leaves holes too small for the list to grow into, and a
        # firmware that changes its power every tick (derating) runs out of memory.
        self.optical = []
        self.temperature = []

    def drop_trace(self):
        """Keep no trace from now on (World.drop_trace)."""
        self.optical = self.temperature = NO_TRACE

    def _stamp(self, record):
        """Append the plant's time now to a trace list: whole seconds, microseconds."""
        record.append(self._s)
        record.append(self._us)

    # -- time --------------------------------------------------------------------------------

    def advance(self, dt_us):
        """Virtual time moved on by dt_us with the present drive: the thermal state, the light
        emitted, and the temperature trace at 1 s resolution (without slowing long sleeps
        down)."""
        due = self._temp_due_us
        while dt_us > 0:
            chunk = dt_us if dt_us < due else due
            if chunk > 0:
                self._integrate(chunk)
                dt_us -= chunk
                due -= chunk
                us = self._us + chunk  # chunk <= _TRACE_TEMP_EVERY_US: one carry at most
                if us >= _US:
                    self._s += 1
                    us -= _US
                self._us = us
            if due <= 0:
                record = self.temperature
                self._stamp(record)
                record.append(round(self.heatsink_c * 1000))
                record.append(round(self.junction_c * 1000))
                due += _TRACE_TEMP_EVERY_US
        self._temp_due_us = due

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
            self._add_emitted(self.peak_w * self._gate_on_us(self._gate_age_us, dt_us) / 1e6)
            self._gate_age_us += dt_us
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

    # -- the diode -----------------------------------------------------------------------------

    def drive(self, duty_u16, enabled, gate_duty_u16, gate_freq_hz, gate_age_us):
        """What drives the diode now: the current set-point's duty, whether the driver's enable
        input is held high (a plain output), else the gate PWM on it (duty 0: none) and how far
        into its present period now is."""
        self._gate = None
        self.peak_w = self.cal.watts(duty_u16) * self.degradation
        if self.enable_stuck or enabled:
            # Enabled continuously; stuck, the driver's enable input stays high whatever the gate
            # PWM does: the diode runs at the peak (the current set-point), not the gated average.
            watts = self.peak_w
            # The driver's current flows below the lasing threshold too: heat without light.
            self.electrical_w = self.electrical_full_w * duty_u16 / 65535
        elif gate_duty_u16:
            period_us = 1e6 / gate_freq_hz
            fraction = gate_duty_u16 / 65536
            self._gate = (period_us, period_us * fraction)
            self._gate_age_us = gate_age_us
            watts = self.peak_w * fraction
            self.electrical_w = self.electrical_full_w * duty_u16 / 65535 * fraction
        else:
            watts = 0.0
            self.electrical_w = 0.0
        self.heat_w = self.electrical_w - watts
        if watts != self.optical_w:
            self.optical_w = watts
            record = self.optical
            self._stamp(record)
            record.append(round(watts * 1e6))

    def _gate_on_us(self, age_us, dt_us):
        """Microseconds the gate PWM is high from age_us into its period to dt_us later (each
        period starts high)."""
        period, on = self._gate

        def high_until(x):
            whole = math.floor(x / period)
            return whole * on + min(x - whole * period, on)

        return high_until(age_us + dt_us) - high_until(age_us)

    def fan_stops(self):
        """The fan fails (sim_faults): the heatsink sheds its heat by convection alone."""
        self.fan_running = False
        self.r_ambient = self.r_fan_off
        self._propagators = {}

    # -- the sensors ----------------------------------------------------------------------------

    def thermistor_fails(self, fault):
        """The thermistor goes open, short or stuck at its last reading (sim_faults)."""
        if fault == "thermistor_stuck" and self._adc_last_uv is None:
            self.adc_uv(self.adc_pin, self.adc_atten_db)  # nothing read yet: freeze today's value
        self.thermistor_fault = fault

    def _photodiode_uv(self):
        """The monitor's amplifier output for the light now (it averages fast pulses): the
        board's calibration read backwards, i.e. a sensor exactly as calibrated."""
        points = self.monitor["calibration"]
        watts = self.optical_w
        for i in range(1, len(points)):
            (uv0, w0), (uv1, w1) = points[i - 1], points[i]
            if watts <= w1 or i == len(points) - 1:
                return uv0 + (uv1 - uv0) * (watts - w0) / (w1 - w0)

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
        """The thermistor's resistance at the heatsink's temperature: linear in ln R versus 1/T
        between the datasheet's points, the search starting from the last segment (the
        temperature moves slowly)."""
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
        """What the ESP32 ADC reads on `pin` (read_uv()): the photodiode's amplifier, the
        thermistor's divider, or 0 on any other pin."""
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
