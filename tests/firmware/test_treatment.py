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


def test_a_power_the_pwm_cannot_set_closely_is_refused():
    board = load_board()
    cal = calibration(board)
    for watts in (0.0001, 0.0008):  # at the lasing threshold a single PWM step is > 1 %
        e = raises(ValueError, tr.Treatment, {"power_w": watts, "dose_j_cm2": 1,
                                              "area_cm2": 1}, cal, 1000)
        assert "within 1 %" in str(e), str(e)


def test_a_treatment_under_a_second_is_refused():
    board = load_board()
    e = raises(ValueError, tr.for_board, {"power_w": 10, "dose_j_cm2": 0.0001, "area_cm2": 1},
               board)
    assert "minimum of 1 s" in str(e)
    assert tr.for_board({"power_w": 10, "dose_j_cm2": 1, "area_cm2": 10}, board).target_j == 10
