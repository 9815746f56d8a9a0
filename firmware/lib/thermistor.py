# The heatsink thermistor: a model of its resistance (Beta, Steinhart-Hart, or the manufacturer's
# R-T table: thermistor_models.py), the divider that turns it into a voltage, and the ESP32 ADC
# that reads it.
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
from array import array

import heap

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


def model_for(config):
    """The model a validated board's "thermistor" section asks for (thermistor_models.py). The
    models are the grid's start-up work and the board checks', never the loop's: the device drops
    the model and its module once booted (Thermistor.release_model)."""
    import thermistor_models

    return thermistor_models.model_for(config)


def linear_range_uv(atten_db):
    """(lowest, highest) microvolts the ESP32 ADC reads linearly at this attenuation."""
    low_mv, high_mv = _LINEAR_MV[atten_db]
    return low_mv * 1000, high_mv * 1000


class Thermistor:
    """The divider and the ADC around a model. `config` is a board's "thermistor" section."""

    def __init__(self, config, model=None):
        div = config["divider"]
        self._config = config  # for uv_at, once release_model() dropped the model
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

    def release_model(self):
        """Drop the model: the grid is built, and the loop reads only the grid. On the chip a
        table model keeps two arrays of doubles (the device drops it after boot: app.py); uv_at
        then builds the model again from the section, for that call only (a settings change's
        board checks). Only for a Thermistor built from its section alone (no `model` given)."""
        self.model = None
        heap.forget("thermistor_models")  # its classes go with the model

    def uv_at(self, temp_c):
        """The divider voltage the model expects at `temp_c` (floats: start-up and host tools)."""
        model = self.model
        if model is None:  # released: built again for this call, its module dropped again
            model = model_for(self._config)
            heap.forget("thermistor_models")
        r = model.ohm(temp_c)
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
