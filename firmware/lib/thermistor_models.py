# The thermistor's resistance against temperature: the Beta equation, Steinhart-Hart, or the
# manufacturer's R-T table. In floats: thermistor.py builds its lookup grid from a model at start-up
# and the board's checks evaluate one, the loop never does. thermistor.model_for imports this
# module for that and drops it again, so that on the chip its classes hold no heap while the loop
# runs.
import math
from array import array

_KELVIN = 273.15


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
