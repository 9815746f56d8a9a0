# The Beta model and the divider: the round trip is exact, the model matches the TDK/EPCOS
# datasheet near its reference points, and readings outside the ADC's linear range are refused.
import thermistor as th
from support import close, load_board

# TDK/EPCOS B57861S0103 datasheet R/T table (shared/reference), a few points.
_DATASHEET = ((25.0, 10000.0), (40.0, 5327.0), (60.0, 2488.0), (100.0, 680.0))


def _sensor():
    return th.Thermistor(load_board()["thermistor"])


def test_round_trip_through_the_divider():
    s = _sensor()
    for temp_c in (5.0, 20.0, 25.0, 37.5, 45.0, 80.0):
        assert close(s.temp_c(s.uv_at(temp_c)), temp_c, 1e-3), temp_c


def test_resistance_at_25c_is_r25():
    s = _sensor()
    assert close(s.ohm(s.uv_at(25.0)), 10000.0, 0.5)


def test_beta_model_against_the_datasheet():
    # B25/100 = 3988 K is exact at 25 and 100 C; between them the Beta model's documented error
    # for this part stays under 0.6 C (it peaks mid-range).
    s = _sensor()
    for temp_c, ohm in _DATASHEET:
        uv = s.supply_uv * ohm / (s.fixed_ohm + ohm)
        assert abs(s.temp_c(uv) - temp_c) < 0.6, (temp_c, s.temp_c(uv))


def test_hotter_means_lower_voltage_with_ntc_at_the_bottom():
    s = _sensor()
    assert s.uv_at(30.0) > s.uv_at(40.0) > s.uv_at(50.0)


def test_open_and_short_are_told_apart():
    s = _sensor()
    assert s.check(1650000) == th.OK
    assert s.check(3100000) == th.OPEN  # NTC at the bottom, open: node pulled to the supply
    assert s.check(0) == th.SHORT  # shorted NTC: node at ground, ADC reads 0
    assert s.check(s.min_uv) == th.OK and s.check(s.max_uv) == th.OK


def test_ntc_at_the_top_swaps_open_and_short():
    config = load_board()["thermistor"]
    config["divider"]["ntc"] = "top"
    s = th.Thermistor(config)
    assert s.check(3100000) == th.SHORT
    assert s.check(0) == th.OPEN
    assert close(s.temp_c(s.uv_at(42.0)), 42.0, 1e-3)
