# Treatments: energy from fluence x area, and refusal of anything the board cannot deliver.
import treatment as tr
from support import calibration, load_board, raises, treatment


def test_target_energy_is_fluence_times_area():
    t = treatment(load_board(), power_w=10.0, dose_j_cm2=8.0, area_cm2=100.0)
    assert t.target_j == 800.0 and t.target_mj == 800000
    # The counted power is the power of the duty actually commanded, within one PWM step.
    assert abs(t.power_uw - 10000000) < 5000


def test_bad_treatments_are_refused_with_the_field_named():
    board = load_board()
    cal = calibration(board)
    cases = (({"power_w": "10", "dose_j_cm2": 8, "area_cm2": 100}, "treatment.power_w"),
             ({"power_w": 10, "dose_j_cm2": -8, "area_cm2": 100}, "treatment.dose_j_cm2"),
             ({"power_w": 10, "dose_j_cm2": 8, "area_cm2": float("nan")}, "treatment.area_cm2"),
             ({"power_w": 10, "dose_j_cm2": 8}, "treatment.area_cm2"),
             ({"power_w": 99, "dose_j_cm2": 8, "area_cm2": 100}, "treatment.power_w"),
             ({"power_w": 10, "dose_j_cm2": 8, "area_cm2": 100, "x": 1}, "treatment.x"),
             ({"power_w": 10, "dose_j_cm2": 200, "area_cm2": 100}, "treatment:"))
    for spec, field in cases:
        e = raises(ValueError, tr.Treatment, spec, cal, board["limits"]["max_energy_j"])
        assert str(e).startswith(field), (spec, str(e))
    raises(ValueError, tr.Treatment, [10, 8, 100], cal, 1000)


def test_a_power_below_the_measured_range_is_refused():
    board = load_board()
    cal = calibration(board)
    for watts in (0.0001, 0.0008, 0.5):  # below the lowest point measured above the threshold
        e = raises(ValueError, tr.Treatment, {"power_w": watts, "dose_j_cm2": 1,
                                              "area_cm2": 1}, cal, 1000)
        assert "is below 0.600 W, the lowest power this board's calibration measured" in str(e)


def test_a_treatment_under_a_second_is_refused():
    board = load_board()
    e = raises(ValueError, tr.for_board, {"power_w": 10, "dose_j_cm2": 0.0001, "area_cm2": 1},
               board)
    assert "minimum of 1 s" in str(e)
    assert tr.for_board({"power_w": 10, "dose_j_cm2": 1, "area_cm2": 10}, board).target_j == 10


def _pulsed(board, power_w, hz, duty_pct):
    return tr.for_board({"power_w": power_w, "dose_j_cm2": 4.0, "area_cm2": 100.0,
                         "mode": "pulsed", "pulse_hz": hz, "duty_pct": duty_pct}, board)


def test_pulsed_power_is_the_average_and_the_peak_must_fit_the_board():
    board = load_board()
    t = _pulsed(board, 7.0, 5000, 50)
    assert t.peak_w == 14.0 and t.gate_period_ms == 0  # 5 kHz: a hardware gate
    assert t.gate_duty_u16 == 32768 and abs(t.power_uw - 7000000) < 70000
    assert abs(t.power_uw_steps[32] - t.power_uw) <= 1  # counted as the average while on
    e = raises(ValueError, _pulsed, board, 10.0, 5000, 50)  # 20 W peak > 15 W
    assert "peak power" in str(e) and str(e).startswith("treatment.power_w")


def test_the_hardware_gate_duty_follows_the_pwm_resolution():
    board = load_board()
    t = _pulsed(board, 4.0, 20000, 33)  # 20 kHz: 11 bits, steps of 32 in duty_u16
    assert t.gate_duty_u16 % 32 == 0
    assert abs(t.gate_duty_u16 / 65536 - 0.33) < 32 / 65536


def test_slow_pulses_are_made_by_the_loop_in_whole_ticks():
    board = load_board()
    t = _pulsed(board, 5.0, 1, 50)
    assert (t.gate_period_ms, t.gate_on_ms) == (1000, 500)
    assert abs(t.power_uw_steps[32] - 10000000) < 100000  # the peak, counted while on
    t = _pulsed(board, 3.0, 10, 30)
    assert (t.gate_period_ms, t.gate_on_ms) == (100, 30)
    for hz, duty in ((3, 50), (10, 33), (10, 5)):  # 333.3 ms; 3.3 ticks; half a tick
        e = raises(ValueError, _pulsed, board, 1.0, hz, duty)
        assert str(e).startswith("treatment.pulse_hz"), (hz, duty, str(e))


def test_mode_fields_are_checked():
    board = load_board()
    base = {"power_w": 5.0, "dose_j_cm2": 4.0, "area_cm2": 100.0}
    cases = (({"mode": "burst"}, "treatment.mode"),
             ({"mode": "pulsed", "pulse_hz": 30000, "duty_pct": 50}, "treatment.pulse_hz"),
             ({"mode": "pulsed", "pulse_hz": 0.5, "duty_pct": 50}, "treatment.pulse_hz"),
             ({"mode": "pulsed", "pulse_hz": 5000, "duty_pct": 100}, "treatment.duty_pct"),
             ({"mode": "pulsed", "pulse_hz": 5000}, "treatment.duty_pct"),
             ({"pulse_hz": 5000}, "treatment.pulse_hz"))
    for extra, field in cases:
        spec = dict(base)
        spec.update(extra)
        e = raises(ValueError, tr.for_board, spec, board)
        assert str(e).startswith(field), (extra, str(e))


def test_which_gate_makes_which_rate():
    board = load_board()
    t = _pulsed(board, 3.0, 50, 50)  # 20 ms period: the loop, in whole ticks
    assert (t.gate_period_ms, t.gate_on_ms) == (20, 10)
    t = _pulsed(board, 3.0, 100, 50)  # a period no longer than a tick: the hardware gate
    assert t.gate_period_ms == 0 and t.gate_duty_u16 == 32768
    for hz, duty, field in ((11, 37, "treatment.pulse_hz"),  # 90.9 ms: not whole ticks
                            (11.5, 50, "treatment.pulse_hz"),  # the chip's PWM takes whole Hz
                            (19999, 1, "treatment.duty_pct")):  # a 0.5 us pulse
        e = raises(ValueError, _pulsed, board, 1.0, hz, duty)
        assert str(e).startswith(field), (hz, duty, str(e))
    assert isinstance(_pulsed(board, 4.0, 5000, 50).pulse_hz, int)
