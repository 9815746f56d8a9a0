# A treatment as prescribed: power, fluence and area, checked against the board it will run on.
# Everything the loop needs later (the duty, the energy target) is computed here, once.
import math
from array import array

import calibration as calibration_module
from thermal import DERATE_STEPS

_MIN_EMISSION_S = 1.0  # shorter than this is not a treatment, and the dose stop could not be exact
_POWER_TOLERANCE = 0.01  # the calibrated power of the duty set must be this close to the prescribed
_HEAT_MARGIN = 1.1  # the heat estimate is taken 10 % high: a bound for the runaway check


class Treatment:
    __slots__ = ("power_w", "dose_j_cm2", "area_cm2", "target_j", "duty_u16", "power_uw",
                 "target_mj", "duty_steps", "power_uw_steps", "heat_uw_steps")

    def __init__(self, spec, calibration, max_energy_j, electrical_w_at_full_duty=0.0):
        if not isinstance(spec, dict):
            raise ValueError("treatment: must be an object with power_w, dose_j_cm2, area_cm2")
        for key in spec:
            if key not in ("power_w", "dose_j_cm2", "area_cm2"):
                raise ValueError("treatment.%s: unknown field" % key)
        self.power_w = _positive(spec, "power_w")
        self.dose_j_cm2 = _positive(spec, "dose_j_cm2")
        self.area_cm2 = _positive(spec, "area_cm2")
        self.target_j = self.dose_j_cm2 * self.area_cm2
        if self.target_j > max_energy_j:
            raise ValueError("treatment: %.1f J exceeds this board's limit of %.1f J"
                             % (self.target_j, max_energy_j))
        try:
            self.duty_u16 = calibration.duty(self.power_w)
        except ValueError as e:
            raise ValueError("treatment.power_w: %s" % e)
        # The energy is counted from the power of the duty actually commanded, not the power asked.
        actual_w = calibration.watts(self.duty_u16)
        if abs(actual_w - self.power_w) > _POWER_TOLERANCE * self.power_w:
            raise ValueError("treatment.power_w: this board's PWM cannot set %.4f W within 1 %% "
                             "(the nearest is %.4f W)" % (self.power_w, actual_w))
        self.power_uw = int(actual_w * 1000000 + 0.5)
        if self.target_j < self.power_w * _MIN_EMISSION_S:
            raise ValueError("treatment: %.3f J at %.3f W is %.3f s of emission, under the "
                             "minimum of %g s" % (self.target_j, self.power_w,
                                                  self.target_j / self.power_w, _MIN_EMISSION_S))
        self.target_mj = int(self.target_j * 1000 + 0.5)
        # Thermal derating reduces the power in DERATE_STEPS steps: their duties, calibrated
        # powers and heat bounds are computed here, once, so that the tick only indexes them.
        # A step below the lowest measured lasing point is off: between there and the threshold
        # the calibration is a straight line across a kink, not a measurement.
        self.duty_steps = array("i", [0] * (DERATE_STEPS + 1))
        self.power_uw_steps = array("i", [0] * (DERATE_STEPS + 1))
        self.heat_uw_steps = array("i", [0] * (DERATE_STEPS + 1))
        lowest_w = calibration.lowest_lasing_w()
        for step in range(1, DERATE_STEPS + 1):
            watts = self.power_w * step / DERATE_STEPS
            if step == DERATE_STEPS:
                duty = self.duty_u16
            elif watts >= lowest_w:
                duty = calibration.duty(watts)
            else:
                continue
            optical_w = calibration.watts(duty)
            self.duty_steps[step] = duty
            self.power_uw_steps[step] = int(optical_w * 1000000 + 0.5)
            electrical_w = electrical_w_at_full_duty * duty / 65535
            heat_w = max(electrical_w - optical_w, 0.0) * _HEAT_MARGIN
            self.heat_uw_steps[step] = int(heat_w * 1000000 + 0.5)

    def as_dict(self):
        return {"power_w": self.power_w, "dose_j_cm2": self.dose_j_cm2,
                "area_cm2": self.area_cm2, "target_j": self.target_j}


def for_board(spec, board):
    """The treatment `spec` on a validated board; ValueError naming the field if it cannot run."""
    return Treatment(spec, calibration_module.for_board(board), board["limits"]["max_energy_j"],
                     board["diode"]["electrical_w_at_full_duty"])


def _positive(spec, key):
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("treatment.%s: must be a number, got %r" % (key, value))
    if not (math.isfinite(value) and value > 0):
        raise ValueError("treatment.%s: must be finite and > 0, got %r" % (key, value))
    return float(value)
