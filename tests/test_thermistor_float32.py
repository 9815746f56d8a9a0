"""The thermistor models in single precision, as the ESP32's MicroPython computes them.

The chip's floats are 32-bit; the unix port and CPython use 64-bit. Here every arithmetic result
and every math function result is rounded to the nearest 32-bit float (struct's "f" format), the
firmware's own thermistor code runs on such numbers, and the accuracy bounds of
tests/firmware/test_thermistor.py must still hold. (libm's logf/expf may be a further ulp off;
the margins below are orders of magnitude larger than that.)
"""

import math
import struct

import pytest
import thermistor as th
import thermistor_models as models
from support import TDK, read_table, thermistor_config


def f32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def _v(x):
    return x.v if isinstance(x, F32) else x


class F32:
    """A number whose every operation is rounded to single precision."""

    __slots__ = ("v",)

    def __init__(self, value):
        self.v = f32(_v(value))

    def __add__(self, o):
        return F32(self.v + _v(o))

    def __radd__(self, o):
        return F32(_v(o) + self.v)

    def __sub__(self, o):
        return F32(self.v - _v(o))

    def __rsub__(self, o):
        return F32(_v(o) - self.v)

    def __mul__(self, o):
        return F32(self.v * _v(o))

    def __rmul__(self, o):
        return F32(_v(o) * self.v)

    def __truediv__(self, o):
        return F32(self.v / _v(o))

    def __rtruediv__(self, o):
        return F32(_v(o) / self.v)

    def __floordiv__(self, o):
        return F32(self.v // _v(o))

    def __pow__(self, o):
        return F32(self.v ** _v(o))

    def __neg__(self):
        return F32(-self.v)

    def __lt__(self, o):
        return self.v < _v(o)

    def __le__(self, o):
        return self.v <= _v(o)

    def __gt__(self, o):
        return self.v > _v(o)

    def __ge__(self, o):
        return self.v >= _v(o)

    def __float__(self):
        return self.v

    def __int__(self):
        return int(self.v)


class Math32:
    """The math functions the firmware's thermistor module uses, in single precision."""

    @staticmethod
    def log(x):
        return F32(math.log(_v(x)))

    @staticmethod
    def exp(x):
        return F32(math.exp(_v(x)))

    @staticmethod
    def sqrt(x):
        return F32(math.sqrt(_v(x)))


def _single(m):
    """Single-precision math for the models: in the module thermistor.model_for imports now (the
    device's Thermistor.release_model drops it from the modules; an import gets it back)."""
    import thermistor_models

    m.setattr(thermistor_models, "math", Math32)


@pytest.fixture
def single_precision(monkeypatch):
    _single(monkeypatch)


def _rows32(rows):
    return [[F32(t), F32(r)] for t, r in rows]


def test_f32_really_rounds():
    assert float(F32(1.0) + 1e-9) == 1.0  # a double would keep it
    assert float(F32(0.1)) != 0.1


def test_table_model_in_single_precision(single_precision):
    rows = read_table(TDK)
    model = models.TableModel(_rows32(rows))
    worst = max(abs(float(model.temp_c(F32(r))) - t) for t, r in rows if 0 <= t <= 100)
    assert worst < 0.01  # the table's own points; the 0.05 C bound has room to spare


def test_steinhart_hart_fit_in_single_precision(single_precision):
    rows = read_table(TDK)
    coefficients = models.SteinhartHartModel.fit(_rows32([[0, 32650], [25, 10000], [85, 1072]]))
    model = models.SteinhartHartModel(*coefficients)
    worst = max(abs(float(model.temp_c(F32(r))) - t) for t, r in rows if 0 <= t <= 100)
    assert worst < 0.1, worst


def test_the_lookup_grid_built_in_single_precision(monkeypatch):
    for model in ("table", "steinhart-hart", "beta"):
        config = thermistor_config(model)  # loaded and validated in double precision
        exact = th.Thermistor(config)
        config32 = thermistor_config(model)
        config32["divider"] = {"supply_v": F32(3.3), "fixed_ohm": F32(10000.0), "ntc": "bottom"}
        config32["table"] = _rows32(config32["table"])
        config32["points"] = _rows32(config32["points"])
        config32["steinhart_hart"] = [F32(c) for c in config32["steinhart_hart"]]
        config32["r25_ohm"], config32["beta_k"] = F32(10000), F32(3988)
        with monkeypatch.context() as m:
            _single(m)
            single = th.Thermistor(config32)
        grid, grid32 = exact._grid_mc, single._grid_mc
        differences = [abs(a - b) for a, b in zip(grid, grid32, strict=True)]
        assert any(differences), "single precision must have reached the grid"
        assert max(differences) <= 20, (model, max(differences))  # 0.02 C at most, anywhere
