# The thermistor models against the manufacturers' R-T tables (shared/reference, copied to
# host_tools/vdevice/data), the divider, the integer lookup the tick uses, and sensor checks.
# Runs on CPython and on both MicroPython interpreters, the chip interpreter's floats single as
# the chip's; tests/test_thermistor_float32.py repeats the accuracy checks in emulated 32-bit
# floats on CPython.
import math

import thermistor as th
import thermistor_models as models
from support import SEMITEC, TDK, heap_bytes, load_board, read_table, thermistor_config, ulps

_K = 273.15


def _between(rows, low_c=0.0, high_c=100.0):
    return [row for row in rows if low_c <= row[0] <= high_c]


def _midpoints(rows):
    """Resistances halfway (in ln R) between neighbouring rows within 0..100 C."""
    result = []
    for i in range(1, len(rows)):
        if rows[i - 1][0] >= 0.0 and rows[i][0] <= 100.0:
            result.append(math.sqrt(rows[i - 1][1] * rows[i][1]))
    return result


def _local_fit(rows, ohm):
    """Steinhart-Hart through the three table rows nearest `ohm`: a smooth reference curve."""
    i = 1
    while i < len(rows) - 2 and rows[i][1] > ohm:
        i += 1
    return models.SteinhartHartModel(*models.SteinhartHartModel.fit(rows[i - 1:i + 2]))


def _worst(errors):
    return max(abs(e) for e in errors)


def test_table_model_reproduces_each_manufacturer_table():
    for name in (TDK, SEMITEC):
        rows = read_table(name)
        model = models.TableModel(rows)
        assert _worst([model.temp_c(r) - t for t, r in _between(rows)]) < 1e-6, name


def test_table_model_within_0_05_c_between_the_rows():
    # Two independent checks of the interpolation between 5 C rows, from 0 to 100 C:
    # 1. leave each row out: interpolating over a 10 C gap must still land within 0.05 C;
    # 2. at each midpoint, agree within 0.05 C with a smooth curve through the nearest rows.
    for name in (TDK, SEMITEC):
        rows = read_table(name)
        for i in range(1, len(rows) - 1):
            t, r = rows[i]
            if 0.0 <= t <= 100.0:
                gap = models.TableModel(rows[:i] + rows[i + 1:])
                assert abs(gap.temp_c(r) - t) < 0.05, (name, t, gap.temp_c(r))
        model = models.TableModel(rows)
        for ohm in _midpoints(rows):
            reference = _local_fit(rows, ohm).temp_c(ohm)
            assert abs(model.temp_c(ohm) - reference) < 0.05, (name, ohm)


def test_steinhart_hart_from_three_points_within_0_1_c():
    rows = read_table(TDK)
    fitted = models.SteinhartHartModel(*models.SteinhartHartModel.fit([[0, 32650], [25, 10000],
                                                               [85, 1072]]))
    assert _worst([fitted.temp_c(r) - t for t, r in _between(rows)]) < 0.1
    table = models.TableModel(rows)
    assert _worst([fitted.temp_c(r) - table.temp_c(r) for r in _midpoints(rows)]) < 0.1
    # The published coefficients for this part agree with the fit.
    published = models.SteinhartHartModel(1.1259e-3, 2.3462e-4, 8.5989e-8)
    assert _worst([published.temp_c(r) - t for t, r in _between(rows)]) < 0.1


def test_beta_model_error_is_what_the_docs_say():
    # docs/thermistors.md: B25/100 = 3988 K is exact at 25 and 100 C and off by up to 0.77 C
    # at 0 C (and -0.39 C at 60 C) over 0-100 C for the TDK/EPCOS part.
    rows = read_table(TDK)
    beta = models.BetaModel(10000, 3988)
    errors = [(abs(beta.temp_c(r) - t), t) for t, r in _between(rows)]
    worst = max(errors)
    assert 0.7 < worst[0] < 0.8 and worst[1] == 0.0, worst
    assert abs(beta.temp_c(10000) - 25.0) < 1e-9
    assert abs(beta.temp_c(680.0) - 100.0) < 0.01


def test_models_invert_their_own_curves():
    rows = read_table(TDK)
    for model in (models.TableModel(rows), models.BetaModel(10000, 3988),
                  models.SteinhartHartModel(1.1259e-3, 2.3462e-4, 8.5989e-8)):
        for temp_c in (0.0, 12.5, 25.0, 47.3, 85.0, 100.0):
            # The models compute in kelvin, 273..373 K, where a single float (the chip's) has a
            # step of 3e-5 K: there the round trip is good to a few of those steps (measured
            # 9e-5 C), still 500 times finer than the grid's 0.05 C; in doubles to 1e-6 C.
            tolerance = max(1e-6, ulps(373.15, 8))
            assert abs(model.temp_c(model.ohm(temp_c)) - temp_c) < tolerance, (model, temp_c)


def test_the_firmware_lookup_keeps_the_models_accuracy():
    # What a tick computes: divider microvolts -> integer milli-degrees through the 5 mV grid.
    rows = read_table(TDK)
    for model in ("table", "steinhart-hart"):
        sensor = th.Thermistor(thermistor_config(model))
        for t, r in _between(rows, 5.0, 100.0):  # 0 C is below the divider's linear range
            uv = int(sensor.supply_uv * r / (sensor.fixed_ohm + r))
            assert sensor.check(uv) == th.OK
            bound = 0.05 if model == "table" else 0.1
            assert abs(sensor.temp_mc(uv) / 1000 - t) < bound, (model, t, sensor.temp_mc(uv))


def _read_all(sensor, uvs):
    for uv in uvs:
        if sensor.check(uv) == th.OK:
            sensor.temp_mc(uv)


def test_a_reading_allocates_nothing():
    # check and temp_mc run on every sample of every tick, in integers. (MicroPython only:
    # CPython has no heap to count.)
    for position in ("bottom", "top"):
        config = thermistor_config("table")
        config["divider"]["ntc"] = position
        sensor = th.Thermistor(config)
        uvs = range(0, sensor.full_scale_uv, 997)  # the whole scale, faults and limits too
        spent = heap_bytes(_read_all, sensor, uvs)
        assert spent in (None, 0), (position, spent)


def test_grid_interpolation_adds_less_than_a_hundredth_of_a_degree():
    sensor = th.Thermistor(thermistor_config("table"))
    uv = sensor.min_uv
    while uv <= sensor.max_uv:
        exact = sensor.model.temp_c(sensor.ohm(uv))
        assert abs(sensor.temp_mc(uv) / 1000 - exact) < 0.01, uv
        uv += 1237  # off-grid points all along the range


def test_divider_round_trip_for_both_positions():
    for position in ("bottom", "top"):
        config = thermistor_config("table")
        config["divider"]["ntc"] = position
        if position == "top":
            config["divider"]["fixed_ohm"] = 3300  # keeps the working range in the ADC's range
        sensor = th.Thermistor(config)
        for temp_c in (30.0, 45.0, 60.0):
            uv = int(sensor.uv_at(temp_c))
            assert sensor.check(uv) == th.OK, (position, temp_c)
            assert abs(sensor.temp_mc(uv) / 1000 - temp_c) < 0.01, (position, temp_c)


def test_sensor_checks_tell_open_short_and_range_apart():
    sensor = th.Thermistor(load_board()["thermistor"])  # NTC at the bottom, 11 dB
    assert sensor.check(1650000) == th.OK
    assert sensor.check(3100000) == th.OPEN  # node pulled to the supply: ADC at full scale
    assert sensor.check(0) == th.SHORT  # node at ground: the ADC reads 0
    assert sensor.check(2600000) == th.RANGE  # below about 3 C: a reading, not a temperature
    assert sensor.check(120000) == th.RANGE  # above about 115 C: the ADC's non-linear foot
    assert sensor.check(sensor.min_uv) == th.OK and sensor.check(sensor.max_uv) == th.OK
    top = thermistor_config("table")
    top["divider"]["ntc"] = "top"
    top_sensor = th.Thermistor(top)
    assert top_sensor.check(3100000) == th.SHORT and top_sensor.check(0) == th.OPEN


# -- one grid per board, shared (issue 15): built by the board check, read by the rest -----------


def _count_builds():
    """Count the Thermistors built from now on: (the list of their configs, undo)."""
    built = []
    construct = th.Thermistor.__init__

    def counting(self, config, model=None):
        built.append(config)
        construct(self, config, model)

    def undo():
        th.Thermistor.__init__ = construct

    th.Thermistor.__init__ = counting
    return built, undo


def test_one_grid_serves_the_board_check_the_settings_and_both_monitors():
    # The boot's path: the board file, its settings saved and loaded again, the App's monitors.
    import settings as st
    from app import App
    from fakeflash import FakeFlash
    from support import FakeHardware

    built, undo = _count_builds()
    try:
        board = load_board()
        flash = FakeFlash()
        st.Settings(flash, board).save({"calibration": board["diode"]["calibration"],
                                         "calibrated_on": "2026-11-01", "pin": {"new": "1234"}})
        settings = st.Settings(flash, board)
        app = App(FakeHardware(board=settings.board), settings.board, None, 0)
    finally:
        undo()
    assert len(built) == 1, len(built)  # was 5: load, save, load again, monitor, supervisor
    assert settings.board is not board and settings.board["thermistor"] is board["thermistor"]
    assert app.controller.thermal.sensor is th.shared(board["thermistor"])


def test_a_section_validated_again_after_a_change_gets_its_own_grid():
    import board as board_file
    from support import raw_board

    data = board_file.validate(raw_board())
    first = th.shared(data["thermistor"])
    data["thermistor"]["divider"]["fixed_ohm"] = 12000  # changed in place, then checked again
    board_file.validate(data)
    second = th.shared(data["thermistor"])
    assert second is not first and second.fixed_ohm == 12000
    assert second._grid_mc == th.Thermistor(data["thermistor"])._grid_mc


def test_nothing_writes_the_shared_grid():
    # Emission, derating, an over-temperature fault and its reset, a new controller after a
    # failed tick (which builds no grid of its own, short of memory as it may be): the grid
    # every monitor reads is still the one the board's numbers give.
    from support import Rig

    rig = Rig(power_w=15.0, dose_j_cm2=20.0)
    sensor = rig.app.controller.thermal.sensor
    built, undo = _count_builds()
    try:
        rig.start_emitting()
        rig.ramp_temp(25.0, 46.0, 0.3, until=lambda: rig.state == "FAULT")
        assert rig.state == "FAULT"
        rig.hw.fail_next_sense = True  # a failed tick: a fresh controller takes over
        rig.tick()
        rig.ramp_temp(46.0, 30.0, 1.0)
        rig.press("reset_pressed")
    finally:
        undo()
    assert built == [] and rig.app.controller.thermal.sensor is sensor
    assert list(sensor._grid_mc) == list(th.Thermistor(rig.board["thermistor"])._grid_mc)


def test_the_supervisor_keeps_nothing_of_the_shared_sensor():
    # It reads four numbers off the sensor once; each tick it works on its own copies of them.
    from support import Rig

    rig = Rig()
    sensor = rig.app.controller.thermal.sensor
    for name in rig.app.supervisor.__dict__:
        value = getattr(rig.app.supervisor, name)
        assert value is not sensor and value is not sensor._grid_mc, name


# -- what the device keeps of the sensor while the loop runs (app.py, board.compact) ------------


def test_a_released_model_gives_the_same_voltages_and_drops_its_module():
    import sys

    sensor = th.Thermistor(load_board()["thermistor"])
    temps = (-10.0, 25.0, 45.0, 46.0, 120.0)
    expected = [sensor.uv_at(t) for t in temps]
    grid = list(sensor._grid_mc)
    sensor.release_model()
    assert sensor.model is None and "thermistor_models" not in sys.modules
    assert [sensor.uv_at(t) for t in temps] == expected  # built again for each call
    assert "thermistor_models" not in sys.modules and list(sensor._grid_mc) == grid


def test_a_compact_board_builds_the_same_grid():
    import board as board_file

    compact = board_file.compact(load_board())["thermistor"]
    assert isinstance(compact["table"][0], tuple)
    assert list(th.Thermistor(compact)._grid_mc) == \
        list(th.Thermistor(load_board()["thermistor"])._grid_mc)
