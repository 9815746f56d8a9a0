# What main.py loads at boot: the selected treatment, written out or naming a preset of the
# device's protocol library. Runs on CPython and on MicroPython.
import json

from startup import load_treatment
from support import REPO, load_board, scratch

_PATH = scratch("laser_test_treatment.json")
_LIBRARY = REPO + "/firmware/protocols.json"


def _load(spec):
    with open(_PATH, "w") as f:
        f.write(json.dumps(spec))
    return load_treatment(_PATH, load_board(), _LIBRARY)


def test_a_written_out_treatment_loads():
    t = _load({"power_w": 5.0, "dose_j_cm2": 4.0, "area_cm2": 25.0})
    assert t.target_j == 100.0 and t.mode == "cw"


def test_a_preset_is_resolved_on_the_device_with_its_skin_type():
    t = _load({"protocol": "knee"})
    assert t.power_w == 10.0 and t.target_j == 1000.0
    darker = _load({"protocol": "knee", "skin_type": 6})
    assert darker.power_w < t.power_w and darker.target_j == t.target_j
    pulsed = _load({"protocol": "low-back-acute"})
    assert pulsed.mode == "pulsed" and pulsed.pulse_hz == 5000


def test_a_bad_selection_loads_nothing():
    assert _load({"protocol": "no-such-preset"}) is None
    assert _load({"protocol": "knee", "skin_type": 9}) is None
    assert _load({"power_w": 99.0, "dose_j_cm2": 4.0, "area_cm2": 25.0}) is None
    assert load_treatment("/tmp/no/such/file.json", load_board(), _LIBRARY) is None


def test_a_preset_above_a_lowered_limit_says_so_and_is_not_selected():
    """A service lowered limits.max_power_w below the selected preset's power: at the next boot
    the treatment is not loaded, the reason names the limit (not the calibration), and status
    does not name the preset as selected (assemble selects only what loaded)."""
    board = load_board()
    board["diode"]["max_power_w"] = 5.0  # as the settings' effective board has it
    with open(_PATH, "w") as f:
        f.write(json.dumps({"protocol": "knee"}))
    errors = []
    assert load_treatment(_PATH, board, _LIBRARY, lambda where, e: errors.append(e)) is None
    assert errors == ["treatment.power_w: power 10.0000 W is above this device's maximum of "
                      "5.000 W (diode.max_power_w, or the lower limits.max_power_w the service "
                      "set)"]
