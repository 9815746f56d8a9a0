# Heatsink temperature from the thermistor divider: ADC microvolts -> ohms -> degrees C.
# Beta model only, for now; the reading is refused outside the ADC's linear range, which is where
# an open or shorted sensor ends up.
import math

# ESP32 ADC linear input range per attenuation, in microvolts (Espressif ADC characteristics).
_LINEAR_UV = {0: (100000, 950000), 2.5: (100000, 1250000), 6: (150000, 1750000),
              11: (150000, 2450000)}
_KELVIN = 273.15

OK = 0
OPEN = 1  # the sensor or its wire is open
SHORT = 2  # the sensor or its wire is shorted


class Thermistor:
    """Converts one divider reading to temperature. `config` is a board's "thermistor" section."""

    def __init__(self, config):
        div = config["divider"]
        self.supply_uv = int(div["supply_v"] * 1e6)
        self.fixed_ohm = float(div["fixed_ohm"])
        self.ntc_at_bottom = div["ntc"] == "bottom"
        self.r0_ohm = float(config["r25_ohm"])
        self.t0_k = 25.0 + _KELVIN
        self.beta_k = float(config["beta_k"])
        self.min_uv, self.max_uv = _LINEAR_UV[config["atten_db"]]

    def check(self, uv):
        """OK, OPEN or SHORT for a reading: outside the linear range is not a temperature."""
        if self.min_uv <= uv <= self.max_uv:
            return OK
        high = uv > self.max_uv
        # NTC at the bottom: an open NTC pulls the node up to the supply.
        return OPEN if high == self.ntc_at_bottom else SHORT

    def ohm(self, uv):
        """Thermistor resistance for a divider voltage inside the supply range."""
        if self.ntc_at_bottom:
            return self.fixed_ohm * uv / (self.supply_uv - uv)
        return self.fixed_ohm * (self.supply_uv - uv) / uv

    def temp_c(self, uv):
        """Temperature for a reading that check() accepted."""
        inv_t = 1.0 / self.t0_k + math.log(self.ohm(uv) / self.r0_ohm) / self.beta_k
        return 1.0 / inv_t - _KELVIN

    def uv_at(self, temp_c):
        """The divider voltage this model expects at `temp_c`: the safety thresholds are set
        with it, once, so that the tick compares integers."""
        r = self.r0_ohm * math.exp(self.beta_k * (1.0 / (temp_c + _KELVIN) - 1.0 / self.t0_k))
        if self.ntc_at_bottom:
            return self.supply_uv * r / (self.fixed_ohm + r)
        return self.supply_uv * self.fixed_ohm / (self.fixed_ohm + r)
