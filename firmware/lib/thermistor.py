# The heatsink thermistor: a model of its resistance (Beta, Steinhart-Hart, or the manufacturer's
# R-T table), the divider that turns it into a voltage, and the ESP32 ADC that reads it.
#
# Floats are used here only once, at start-up, to build a lookup grid of the temperature at every
# 5 mV of divider voltage. Each tick then converts microvolts to milli-degrees with integer
# arithmetic: no allocation on the chip, and the chip's single-precision floats touch nothing but
# the grid (whose error tests/test_thermistor_float32.py bounds in emulated 32-bit floats).
#
# The grid is built once per board (shared()): the board check, the thermal monitor and the
# supervisor read the same one, and only the constructor writes it. On the chip each grid point
# leaves a few dozen float objects of garbage, and the grid itself takes 1.8 KB of the ESP32's
# 56,000-byte heap: built once, not three times.
import math
from array import array

_KELVIN = 273.15
# ESP32 ADC linear input range per attenuation (Espressif), in millivolts: an int past 13 bits
# in a tuple of constants is frozen into an image as a big-int object (MicroPython's mpy-tool),
# and the tick subtracts the range's low end from every sample (linear_range_uv scales them).
_LINEAR_MV = {0: (100, 950), 2.5: (100, 1250), 6: (150, 1750), 11: (150, 2450)}
# Full scale per attenuation, in microvolts.
_FULL_SCALE_UV = {0: 1100000, 2.5: 1500000, 6: 2200000, 11: 3100000}
_FLOOR_UV = 100000  # below about 100 mV the ADC reads 0
GRID_UV = 5000  # lookup resolution; linear interpolation between points adds < 0.01 C

OK = 0
OPEN = 1  # the sensor or its wire is open
SHORT = 2  # the sensor or its wire is shorted
RANGE = 3  # a reading, but outside the ADC's linear range: no trustworthy temperature


def _inv_k(temp_c):
    return 1.0 / (temp_c + _KELVIN)


class BetaModel:
    """R = R25 * exp(B * (1/T - 1/T25)). B is quoted for a temperature pair (B25/85, B25/100):
    exact at those two temperatures, off by up to about a degree between and beyond them."""

    def __init__(self, r25_ohm, beta_k):
        self.r25_ohm = r25_ohm
        self.beta_k = beta_k

    def temp_c(self, ohm):
        return 1.0 / (_inv_k(25.0) + math.log(ohm / self.r25_ohm) / self.beta_k) - _KELVIN

    def ohm(self, temp_c):
        return self.r25_ohm * math.exp(self.beta_k * (_inv_k(temp_c) - _inv_k(25.0)))


class SteinhartHartModel:
    """1/T = A + B ln R + C (ln R)^3."""

    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c

    @staticmethod
    def fit(points):
        """Coefficients (A, B, C) through three [temp_c, ohm] points (the standard solution)."""
        lns = [math.log(p[1]) for p in points]
        ys = [_inv_k(p[0]) for p in points]
        g2 = (ys[1] - ys[0]) / (lns[1] - lns[0])
        g3 = (ys[2] - ys[0]) / (lns[2] - lns[0])
        c = (g3 - g2) / (lns[2] - lns[1]) / (lns[0] + lns[1] + lns[2])
        b = g2 - c * (lns[0] * lns[0] + lns[0] * lns[1] + lns[1] * lns[1])
        a = ys[0] - (b + lns[0] * lns[0] * c) * lns[0]
        return a, b, c

    def temp_c(self, ohm):
        ln = math.log(ohm)
        return 1.0 / (self.a + self.b * ln + self.c * ln * ln * ln) - _KELVIN

    def ohm(self, temp_c):
        # The cubic's real root (Cardano), as in the Steinhart-Hart literature.
        y = (self.a - _inv_k(temp_c)) / self.c
        x = math.sqrt((self.b / (3.0 * self.c)) ** 3 + y * y / 4.0)
        return math.exp(_cbrt(x - y / 2.0) - _cbrt(x + y / 2.0))


def _cbrt(v):
    return v ** (1.0 / 3.0) if v >= 0 else -((-v) ** (1.0 / 3.0))


class TableModel:
    """The manufacturer's R-T table, interpolated linearly in ln R versus 1/T (the form in which an
    NTC's curve is nearly straight). `rows` is [[temp_c, ohm], ...], temperatures rising."""

    def __init__(self, rows):
        # Arrays of doubles, not lists of floats: on the chip every float in a list is an object
        # of its own, scattered among the garbage of computing the next one.
        self.inv_k = array("d", range(len(rows)))  # falling
        self.ln_ohm = array("d", range(len(rows)))  # falling
        for i in range(len(rows)):
            self.inv_k[i] = _inv_k(rows[i][0])
            self.ln_ohm[i] = math.log(rows[i][1])
        self.low_c = rows[0][0]
        self.high_c = rows[-1][0]

    def temp_c(self, ohm):
        return 1.0 / _interpolate(self.ln_ohm, self.inv_k, math.log(ohm)) - _KELVIN

    def ohm(self, temp_c):
        return math.exp(_interpolate(self.inv_k, self.ln_ohm, _inv_k(temp_c)))


def _interpolate(xs, ys, x):
    """Piecewise-linear y(x) through falling xs; the end segments extend beyond the table."""
    last = len(xs) - 1
    i = 1
    while i < last and x < xs[i]:
        i += 1
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)


def model_for(config):
    """The model a validated board's "thermistor" section asks for."""
    kind = config["model"]
    if kind == "table":
        return TableModel(config["table"])
    if kind == "beta":
        return BetaModel(config["r25_ohm"], config["beta_k"])
    coefficients = config.get("steinhart_hart")
    if coefficients is None:
        coefficients = SteinhartHartModel.fit(config["points"])
    return SteinhartHartModel(coefficients[0], coefficients[1], coefficients[2])


def linear_range_uv(atten_db):
    """(lowest, highest) microvolts the ESP32 ADC reads linearly at this attenuation."""
    low_mv, high_mv = _LINEAR_MV[atten_db]
    return low_mv * 1000, high_mv * 1000


class Thermistor:
    """The divider and the ADC around a model. `config` is a board's "thermistor" section."""

    def __init__(self, config, model=None):
        div = config["divider"]
        self.supply_uv = div["supply_v"] * 1e6
        self.fixed_ohm = div["fixed_ohm"]
        self.ntc_at_bottom = div["ntc"] == "bottom"
        self.model = model or model_for(config)
        self.min_uv, self.max_uv = linear_range_uv(config["atten_db"])
        # Where an open or a shorted sensor puts the reading: the supply (clipped at the ADC's
        # full scale) or ground (which the ADC reads as 0).
        self.full_scale_uv = _FULL_SCALE_UV[config["atten_db"]]
        self.rail_uv = int(min(0.9 * self.supply_uv, 0.95 * self.full_scale_uv))
        count = (self.max_uv - self.min_uv) // GRID_UV + 2
        # Allocated whole before the float work begins (an array of range's exact length): a
        # list grown point by point would leave a trail of holes between the floats' garbage.
        # Written here only: shared() hands this one grid to every reader.
        grid = array("i", range(count))
        for i in range(count):
            grid[i] = self._grid_point(i)
        self._grid_mc = grid

    def _grid_point(self, i):
        uv = self.min_uv + i * GRID_UV
        return int(self.model.temp_c(self.ohm(uv)) * 1000.0 + 0.5)

    def check(self, uv):
        """OK, OPEN, SHORT or RANGE for one reading (integer comparisons only)."""
        if self.min_uv <= uv <= self.max_uv:
            return OK
        if uv >= self.rail_uv:  # at the supply: an open NTC at the bottom, a shorted one on top
            return OPEN if self.ntc_at_bottom else SHORT
        if uv < _FLOOR_UV:
            return SHORT if self.ntc_at_bottom else OPEN
        return RANGE

    def monotonic(self):
        """True if the grid moves one way over the whole linear range: colder with more voltage
        for an NTC at the bottom of the divider, warmer for one at the top."""
        grid = self._grid_mc
        for i in range(1, len(grid)):
            if (grid[i] >= grid[i - 1]) if self.ntc_at_bottom else (grid[i] <= grid[i - 1]):
                return False
        return True

    def span_mc(self):
        """(coldest, hottest) milli-degrees over the ADC's linear range."""
        first, last = self._grid_mc[0], self._grid_mc[-1]
        return min(first, last), max(first, last)

    def temp_mc(self, uv):
        """Milli-degrees C for a reading that check() accepted: integer interpolation."""
        offset = uv - self.min_uv
        i = offset // GRID_UV
        grid = self._grid_mc
        return grid[i] + (grid[i + 1] - grid[i]) * (offset - i * GRID_UV) // GRID_UV

    def ohm(self, uv):
        """Thermistor resistance for a divider voltage strictly between 0 and the supply."""
        if self.ntc_at_bottom:
            return self.fixed_ohm * uv / (self.supply_uv - uv)
        return self.fixed_ohm * (self.supply_uv - uv) / uv

    def uv_at(self, temp_c):
        """The divider voltage the model expects at `temp_c` (floats: start-up and host tools)."""
        r = self.model.ohm(temp_c)
        if self.ntc_at_bottom:
            return self.supply_uv * r / (self.fixed_ohm + r)
        return self.supply_uv * self.fixed_ohm / (self.fixed_ohm + r)


# The Thermistor of the board in use, with the "thermistor" section it was built from.
_shared = [None, None]


def share(config, sensor):
    """Make `sensor`, built from `config`, the one shared(config) returns (board.validate does,
    once its checks of that sensor have passed)."""
    _shared[0], _shared[1] = config, sensor


def shared(config):
    """The Thermistor of a validated board's "thermistor" section: the one its validation built
    from this very section object, else a new one. So the grid is built once per board and read
    by the board check, the settings' effective board (which keeps the design board's section),
    the thermal monitor and the supervisor. A validated board is never changed; a section changed
    in place must be validated again (board.validate builds from what the section holds)."""
    if _shared[0] is not config:
        share(config, Thermistor(config))
    return _shared[1]
