# The calibration curve: interpolation both ways, PWM resolution, and refusals (never clamping).
from calibration import Calibration, pwm_resolution_bits
from support import calibration, close, load_board, raises, ulps


def test_pwm_resolution_follows_the_esp32_table():
    table = {1000: 16, 5000: 13, 10000: 12, 20000: 11, 40000: 10, 100000: 9}
    for freq, bits in table.items():
        assert pwm_resolution_bits(freq) == bits, (freq, pwm_resolution_bits(freq))


def test_watts_interpolate_between_measured_points():
    cal = calibration(load_board())
    assert cal.watts(0) == 0.0
    assert cal.watts(5000) == 0.0  # below the lasing threshold: no light
    # Exact but for rounding: a few of the last digit (1e-16 of a watt in doubles, 1e-7 in the
    # chip's single floats, whose PWM steps are 2e-3 W apart at 5 kHz).
    assert close(cal.watts(12000), (0.6 + 3.1) / 2, ulps(1.85, 4))
    assert close(cal.watts(65535), 17.0, ulps(17.0, 4))


def test_duty_is_aligned_and_round_trips():
    cal = calibration(load_board())
    for watts in (0.6, 1.0, 5.0, 10.0, 15.0):
        duty = cal.duty(watts)
        assert duty % cal.step == 0
        # Rounding to the nearest step: at most half a step's worth of watts away.
        half_step_w = (cal.watts(duty + cal.step) - cal.watts(duty - cal.step)) / 4
        assert close(cal.watts(duty), watts, half_step_w + 1e-9), watts


def test_out_of_range_power_is_refused_not_clamped():
    cal = calibration(load_board())
    # Above the maximum, and below the lowest power measured above the lasing threshold (0.6 W).
    for bad in (0.0, -1.0, 0.3, 0.59, 15.01, 100.0):
        e = raises(ValueError, cal.duty, bad)
        assert ("is above this device's maximum of 15.000 W" if bad > 15 else
                "is below 0.600 W, the lowest power") in str(e), str(e)


def test_a_curve_that_cannot_reach_a_power_refuses_it():
    cal = Calibration([[0, 0.0], [1000, 0.0], [2000, 1.0]], 5000, 1.0)
    assert cal.duty(1.0) > 1000
    raises(ValueError, cal.duty, 1.5)
