# The protocol library: the shipped presets, the loader's checks, skin types, and the board check
# with the firmware's own Treatment.
import protocols
import treatment as treatment_module
from support import (
    PROTOCOLS_JSON,
    REPO,
    library_data,
    load_board,
    preset_data,
    raises,
    shipped_protocols,
)

REQUIRED = ("low-back-acute", "low-back-chronic", "thoracic-spine", "cervical-spine", "hip",
            "knee", "shoulder-rotator-cuff-repair", "acl-ucl-post-op", "fracture-healing-callus",
            "facial-fracture", "tendinopathy")


def _refused(data, words):
    e = raises(ValueError, protocols.build, data)
    assert words in str(e), (words, str(e))
    return str(e)


def test_the_shipped_library_loads_with_every_required_preset():
    library = shipped_protocols()
    names = protocols.names(library)
    for name in REQUIRED:
        assert name in names, name
    assert len(set(names)) == len(names)
    assert any(p["mode"] == "pulsed" for p in library["protocols"])


def test_every_shipped_preset_is_consistent_and_fits_the_boards():
    for p in shipped_protocols()["protocols"]:
        name = p["name"]
        assert p["region"] and p["condition"] and p["source"], name
        assert abs(p["energy_j"] - p["dose_j_cm2"] * p["area_cm2"]) <= 0.005 * p["energy_j"], name
        assert abs(p["time_s"] - p["energy_j"] / p["power_w"]) <= 0.005 * p["time_s"], name
        assert 0.6 <= p["power_w"] <= 15.0, name
        assert p["time_s"] >= 1.0 and p["energy_j"] <= 10000.0, name
        if p["mode"] == "pulsed":
            assert 1 <= p["pulse_hz"] <= 20000 and 1 <= p["duty_pct"] <= 99, name
            assert p["power_w"] * 100.0 / p["duty_pct"] <= 15.0, name
        factors = p["skin_power_factor"]
        assert len(factors) == 6 and factors[0] == 1.0, name
        assert min(factors) * p["power_w"] >= 0.6, name


def test_the_summus_lumbar_example_is_shipped_as_published():
    p = protocols.find(shipped_protocols(), "low-back-chronic")
    assert (p["power_w"], p["time_s"], p["energy_j"], p["area_cm2"]) == (12.0, 420.0, 5040.0,
                                                                         500.0)
    assert abs(p["dose_j_cm2"] - 10.08) < 1e-9


def test_check_all_passes_on_both_boards():
    library = shipped_protocols()
    for board_name in ("sim", "esp32-devkitc"):
        count = protocols.check_all(library, load_board(board_name))
        assert count == 7 * len(library["protocols"]), (board_name, count)


def test_each_spec_builds_a_treatment_with_the_preset_energy():
    library = shipped_protocols()
    board = load_board()
    for p in library["protocols"]:
        for skin_type in (None, 1, 4, 5, 6):
            spec = protocols.spec_for(library, p["name"], skin_type)
            t = treatment_module.for_board(spec, board)
            assert abs(t.target_j - p["energy_j"]) <= 1e-6 * p["energy_j"], (p["name"], skin_type)
            assert t.mode == p["mode"]


def test_spec_for_gives_the_treatment_keys():
    library = shipped_protocols()
    assert protocols.spec_for(library, "low-back-chronic") == {
        "power_w": 12.0, "dose_j_cm2": 10.08, "area_cm2": 500.0}
    assert protocols.spec_for(library, "low-back-acute") == {
        "power_w": 6.0, "dose_j_cm2": 6.0, "area_cm2": 500.0, "mode": "pulsed",
        "pulse_hz": 5000, "duty_pct": 50}


def test_skin_types_v_and_vi_lower_the_power_and_lengthen_the_time_for_the_same_energy():
    library = shipped_protocols()
    for name in protocols.names(library):
        light = protocols.describe(library, name, 1)
        assert protocols.describe(library, name) == dict(light, skin_type=None), name
        for skin_type in (2, 3, 4):
            assert protocols.describe(library, name, skin_type)["power_w"] == light["power_w"]
        v = protocols.describe(library, name, 5)
        vi = protocols.describe(library, name, 6)
        assert light["power_w"] > v["power_w"] > vi["power_w"], name
        assert light["time_s"] < v["time_s"] < vi["time_s"], name
        assert light["irradiance_w_cm2"] > v["irradiance_w_cm2"] > vi["irradiance_w_cm2"]
        for darker in (v, vi):
            assert abs(darker["energy_j"] - light["energy_j"]) <= 1e-9 * light["energy_j"], name
            assert darker["dose_j_cm2"] == light["dose_j_cm2"], name
    chronic = protocols.describe(library, "low-back-chronic", 6)
    assert chronic["power_w"] == 7.2 and abs(chronic["time_s"] - 700.0) < 1e-9
    acute = protocols.describe(library, "low-back-acute", 5)
    assert (acute["power_w"], acute["peak_w"], acute["pulse_hz"]) == (4.8, 9.6, 5000)


def test_unknown_preset_and_skin_type_are_refused_by_name():
    library = shipped_protocols()
    e = raises(ValueError, protocols.spec_for, library, "low-back-chronik")
    assert str(e).startswith("protocol 'low-back-chronik': unknown (known: low-back-acute,"), \
        str(e)
    for skin_type in (0, 7, "V", True, 5.0, -1):
        e = raises(ValueError, protocols.spec_for, library, "knee", skin_type)
        assert str(e).startswith("skin_type: must be a Fitzpatrick skin type 1..6"), str(e)
    e = raises(ValueError, protocols.spec_for, library, 42)
    assert str(e).startswith("protocol: must be a preset name or a protocol object")


def test_a_contradictory_preset_is_refused_by_name():
    # The peer GUI's lumbar protocol: 40 W for 720 s is 28 800 J, not the 3600 J it shows.
    bad = preset_data(name="lumbar-gui", power_w=40.0, dose_j_cm2=10.0, area_cm2=360.0,
                      energy_j=3600.0, time_s=720.0)
    msg = _refused(library_data(preset_data(), bad), "protocol 'lumbar-gui': ")
    assert "energy_j, time_s, power_w: inconsistent: power_w x time_s = 40 x 720 = 28800 J but " \
           "energy_j = 3600 J" in msg, msg
    # energy that is not dose x area, named in the file's words (dose_j_cm2, not fluence)
    msg = _refused(library_data(preset_data(name="knee-bad", energy_j=900.0, time_s=90.0)),
                   "protocol 'knee-bad': energy_j, dose_j_cm2, area_cm2: inconsistent")
    assert "dose_j_cm2 x area_cm2 = 8 x 100 = 800 J but energy_j = 900 J" in msg, msg
    # a time that is not energy / power
    _refused(library_data(preset_data(time_s=81.0)),
             "protocol 'test-preset': energy_j, time_s, power_w: inconsistent")


def test_written_out_numbers_may_round_within_half_a_percent():
    p = preset_data(power_w=7.0, time_s=114.3)  # 800 J / 7 W = 114.29 s
    library = protocols.build(library_data(p))
    assert protocols.find(library, "test-preset")["time_s"] == 114.3
    _refused(library_data(preset_data(power_w=7.0, time_s=115.0)), "inconsistent")


def test_every_bad_field_is_refused_naming_the_preset_and_field():
    cases = (
        (dict(power_w="10"), "protocol 'test-preset'.power_w: must be a number"),
        (dict(power_w=float("nan")), "protocol 'test-preset'.power_w: must be finite and > 0"),
        (dict(area_cm2=0), "protocol 'test-preset'.area_cm2: must be finite and > 0"),
        (dict(dose_j_cm2=-8.0), "protocol 'test-preset'.dose_j_cm2: must be finite and > 0"),
        (dict(energy_j=True), "protocol 'test-preset'.energy_j: must be a number"),
        (dict(time_s=float("inf")), "protocol 'test-preset'.time_s: must be finite"),
        (dict(power_w="x", energy_j=None), "protocol 'test-preset'.energy_j: missing"),
        (dict(power_w=500.0), "protocol 'test-preset'.power_w: 500 W is outside"),
        (dict(power_w=None), "protocol 'test-preset'.power_w: missing"),
        (dict(energy_j=None), "protocol 'test-preset'.energy_j: missing"),
        (dict(source=None), "protocol 'test-preset'.source: missing"),
        (dict(region=""), "protocol 'test-preset'.region: must be text"),
        (dict(condition=3), "protocol 'test-preset'.condition: must be text"),
        (dict(colour="red"), "protocol 'test-preset'.colour: unknown field"),
        (dict(name="Knee Pain"), "protocols[0].name: must be 1..40 characters"),
        (dict(name=None), "protocols[0].name: must be"),
        (dict(mode="burst"), "protocol 'test-preset'.mode: must be \"cw\" or \"pulsed\""),
        (dict(mode=None), "protocol 'test-preset'.mode: missing"),
        (dict(pulse_hz=5000), "protocol 'test-preset'.pulse_hz: only for mode \"pulsed\""),
        (dict(duty_pct=50), "protocol 'test-preset'.duty_pct: only for mode \"pulsed\""),
        (dict(mode="pulsed", duty_pct=50), "protocol 'test-preset'.pulse_hz: must be a whole"),
        (dict(mode="pulsed", pulse_hz=0, duty_pct=50), "'test-preset'.pulse_hz: must be"),
        (dict(mode="pulsed", pulse_hz=20001, duty_pct=50), "'test-preset'.pulse_hz: must be"),
        (dict(mode="pulsed", pulse_hz=50.5, duty_pct=50), "'test-preset'.pulse_hz: must be"),
        (dict(mode="pulsed", pulse_hz=5000), "protocol 'test-preset'.duty_pct: must be a number"),
        (dict(mode="pulsed", pulse_hz=5000, duty_pct=0), "'test-preset'.duty_pct: must be"),
        (dict(mode="pulsed", pulse_hz=5000, duty_pct=100), "'test-preset'.duty_pct: must be"),
        (dict(mode="pulsed", pulse_hz=5000, duty_pct=5), "'test-preset'.duty_pct: the peak power "
                                                         "200 W is above 100 W"),
        (dict(skin_power_factor=None), "protocol 'test-preset'.skin_power_factor: missing"),
        (dict(skin_power_factor=[1.0, 0.8]), ".skin_power_factor: must be a list of 6"),
        (dict(skin_power_factor=0.8), "'test-preset'.skin_power_factor: must be a list of 6"),
        (dict(skin_power_factor=[1.0, 1.0, 1.0, 1.0, 0.8, 0.1]),
         "'test-preset'.skin_power_factor[5]: must be a number within 0.25..1"),
        (dict(skin_power_factor=[1.0, 1.0, 1.0, 1.0, 0.8, "0.6"]), ".skin_power_factor[5]: must"),
        (dict(skin_power_factor=[1.2, 1.0, 1.0, 1.0, 0.8, 0.6]), ".skin_power_factor[0]: must"),
        (dict(skin_power_factor=[1.0, 1.0, 1.0, 1.0, 0.6, 0.8]),
         "'test-preset'.skin_power_factor[5]: 0.8 for type VI is above 0.6 for type V"),
    )
    for change, words in cases:
        _refused(library_data(preset_data(**change)), words)


def test_a_skin_adjusted_dose_outside_the_limits_is_refused_by_name():
    # 40 kJ at 0.5 W is 80 000 s; at type V's 0.4 W it would be 100 000 s, over dose's one day
    p = preset_data(power_w=0.5, dose_j_cm2=100.0, area_cm2=400.0, energy_j=40000.0,
                    time_s=80000.0)
    _refused(library_data(p), "protocol 'test-preset' (skin type V).time_s: 100000 s")


def test_bad_library_files_are_refused():
    _refused([], "protocols: must be an object")
    _refused({"format": 2, "protocols": [preset_data()]}, "protocols.format: must be 1, got 2")
    _refused({"format": 1}, "protocols.protocols: must be a non-empty list")
    _refused({"format": 1, "protocols": []}, "protocols.protocols: must be a non-empty list")
    _refused({"format": 1, "protocols": [preset_data()], "extra": 1}, "protocols.extra: unknown")
    _refused({"format": 1, "protocols": [preset_data()], "description": 5},
             "protocols.description: must be text")
    _refused(library_data(preset_data(), "knee"), "protocols[1]: must be an object")
    _refused(library_data(preset_data(), preset_data(power_w=5.0, time_s=160.0)),
             "protocols[1].name: 'test-preset' is used twice")
    e = raises(ValueError, protocols.load, REPO + "/no-such-protocols.json")
    assert "no-such-protocols.json: cannot read it" in str(e), str(e)
    e = raises(ValueError, protocols.load, REPO + "/firmware/lib/dose.py")
    assert "dose.py: not valid JSON" in str(e), str(e)
    assert protocols.names(protocols.load(PROTOCOLS_JSON))[0] == "low-back-acute"


def test_a_pulsed_preset_whose_peak_is_the_boards_maximum_passes():
    # 4.8 W at 32 % is a 15 W peak, exactly the sim diode's maximum; the chip's single floats
    # round the division just above it (as doubles do 4.65 W at 31 %, which the gate's resolution
    # refuses anyway).
    edge = preset_data(name="edge", power_w=4.8, time_s=800.0 / 4.8, mode="pulsed",
                       pulse_hz=1000, duty_pct=32)
    assert protocols.check_all(protocols.build(library_data(edge)), load_board()) == 7


def test_check_all_names_the_first_preset_a_board_cannot_deliver():
    board = load_board()
    ok = preset_data(name="fine")
    # 10 W average at 50 % is a 20 W peak: more than the 15 W diode
    hot = preset_data(name="too-hot", mode="pulsed", pulse_hz=5000, duty_pct=50)
    e = raises(ValueError, protocols.check_all, protocols.build(library_data(ok, hot)), board)
    assert str(e).startswith("protocol 'too-hot'"), str(e)
    assert "peak power" in str(e) and "15 W" in str(e), str(e)
    # 3 Hz: a 333.3 ms period the 10 ms loop cannot gate in whole ticks
    slow = preset_data(name="three-hz", power_w=5.0, time_s=160.0, mode="pulsed", pulse_hz=3,
                       duty_pct=50)
    e = raises(ValueError, protocols.check_all, protocols.build(library_data(ok, slow)), board)
    assert str(e).startswith("protocol 'three-hz': treatment.pulse_hz:"), str(e)
    # more energy than the board allows
    big = preset_data(name="big", dose_j_cm2=20.0, area_cm2=600.0, energy_j=12000.0,
                      time_s=1200.0)
    e = raises(ValueError, protocols.check_all, protocols.build(library_data(big)), board)
    assert str(e).startswith("protocol 'big': treatment: 12000.0 J exceeds"), str(e)
    # under a second of emission
    short = preset_data(name="short", dose_j_cm2=0.05, area_cm2=100.0, energy_j=5.0,
                        time_s=0.5)
    e = raises(ValueError, protocols.check_all, protocols.build(library_data(short)), board)
    assert str(e).startswith("protocol 'short': treatment:") and "minimum of 1 s" in str(e)


def test_a_skin_type_that_takes_the_power_under_the_lowest_calibrated_point_is_named():
    board = load_board()
    low = preset_data(name="faint", power_w=0.8, energy_j=800.0, time_s=1000.0)
    e = raises(ValueError, protocols.check_all, protocols.build(library_data(low)), board)
    assert str(e).startswith("protocol 'faint' (skin type VI).power_w: 0.48 W is under this "
                             "board's lowest calibrated lasing power of 0.6 W"), str(e)


def test_custom_protocols_go_through_the_same_checks():
    library = shipped_protocols()
    board = load_board()
    custom = {"power_w": 8.0, "dose_j_cm2": 6.0, "area_cm2": 50.0}
    assert protocols.spec_for(library, custom) == custom
    assert protocols.spec_for(None, custom, 6) == {"power_w": 4.8, "dose_j_cm2": 6.0,
                                                   "area_cm2": 50.0}
    assert protocols.check_one(custom, board) == 7
    info = protocols.describe(None, custom)
    assert info["name"] == "custom" and info["energy_j"] == 300.0 and info["time_s"] == 37.5
    # written-out numbers are checked when given
    e = raises(ValueError, protocols.spec_for, None, dict(custom, energy_j=400.0))
    assert str(e).startswith("protocol 'custom': energy_j, dose_j_cm2, area_cm2: inconsistent")
    e = raises(ValueError, protocols.spec_for, None, dict(custom, energy_j=None))
    assert str(e) == "protocol 'custom'.energy_j: must be a number, got None", str(e)
    e = raises(ValueError, protocols.spec_for, None, {"power_w": 8.0, "dose_j_cm2": 6.0})
    assert str(e) == "protocol 'custom'.area_cm2: missing", str(e)
    e = raises(ValueError, protocols.spec_for, None, dict(custom, name="mine", mode="pulsed"))
    assert str(e).startswith("protocol 'mine'.pulse_hz:"), str(e)
    # its own skin factors, checked as a preset's
    e = raises(ValueError, protocols.spec_for, None, dict(custom, skin_power_factor=[1, 1]))
    assert "skin_power_factor: must be a list of 6" in str(e)
    # and against the board
    e = raises(ValueError, protocols.check_one, dict(custom, power_w=16.0), board)
    assert str(e).startswith("protocol 'custom': treatment.power_w:"), str(e)
    assert protocols.check_one("knee", board, library) == 7
