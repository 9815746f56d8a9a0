# Dose maths: every formula both ways, any sufficient subset, and every refusal naming its field.
import dose
from support import raises, ulps

FULL = {"energy_j": 800.0, "fluence_j_cm2": 8.0, "irradiance_w_cm2": 0.1, "time_s": 80.0,
        "power_w": 10.0, "area_cm2": 100.0}
# The triples that are one relation each: they cannot fix the other three.
DEPENDENT = (("energy_j", "time_s", "power_w"), ("energy_j", "fluence_j_cm2", "area_cm2"),
             ("irradiance_w_cm2", "power_w", "area_cm2"),
             ("fluence_j_cm2", "irradiance_w_cm2", "time_s"))


def _same(result, expected, rel=1e-9):
    for key in dose.FIELDS:
        assert abs(result[key] - expected[key]) <= rel * expected[key], (key, result, expected)


def _triples():
    fields = dose.FIELDS
    n = len(fields)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                yield (fields[i], fields[j], fields[k])


def test_the_issue_example_returns_all_six():
    result = dose.solve(power_w=10, fluence_j_cm2=8, area_cm2=100)
    assert sorted(result) == sorted(dose.FIELDS)
    _same(result, FULL)
    assert isinstance(result["power_w"], float)


def test_energy_is_power_times_time_both_ways():
    assert dose.solve(power_w=12, time_s=420, area_cm2=500)["energy_j"] == 5040.0
    assert dose.solve(energy_j=5040, time_s=420, area_cm2=500)["power_w"] == 12.0
    assert dose.solve(energy_j=5040, power_w=12, area_cm2=500)["time_s"] == 420.0


def test_fluence_is_energy_over_area_both_ways():
    r = dose.solve(energy_j=5040, area_cm2=500, power_w=12)
    assert abs(r["fluence_j_cm2"] - 10.08) < 1e-12
    assert dose.solve(fluence_j_cm2=10, area_cm2=100, power_w=10)["energy_j"] == 1000.0
    assert dose.solve(fluence_j_cm2=10, energy_j=1000, power_w=10)["area_cm2"] == 100.0


def test_irradiance_is_power_over_area_both_ways():
    r = dose.solve(power_w=12, area_cm2=500, time_s=420)
    assert abs(r["irradiance_w_cm2"] - 0.024) < 1e-12
    assert dose.solve(irradiance_w_cm2=0.1, area_cm2=30, time_s=50)["power_w"] == 3.0
    assert abs(dose.solve(irradiance_w_cm2=0.1, power_w=3, time_s=50)["area_cm2"] - 30) < 1e-9


def test_time_is_fluence_times_area_over_power_both_ways():
    r = dose.solve(fluence_j_cm2=10, area_cm2=100, power_w=10)
    assert r["time_s"] == 100.0
    # ... and fluence = irradiance x time
    assert abs(dose.solve(irradiance_w_cm2=0.1, time_s=100, area_cm2=100)["fluence_j_cm2"]
               - 10.0) < 1e-9
    assert abs(dose.solve(fluence_j_cm2=10, time_s=100, area_cm2=100)["irradiance_w_cm2"]
               - 0.1) < 1e-12


def test_every_sufficient_triple_gives_the_same_six_and_the_others_are_refused():
    solved = refused = 0
    for triple in _triples():
        given = {}
        for key in triple:
            given[key] = FULL[key]
        if triple in DEPENDENT:
            e = raises(ValueError, dose.solve_dict, given)
            assert str(e).startswith("dose: not enough to solve for"), str(e)
            for key in dose.FIELDS:
                if key not in triple:
                    assert key in str(e).split("give three")[0], (key, str(e))
            refused += 1
        else:
            _same(dose.solve_dict(given), FULL)
            solved += 1
    assert (solved, refused) == (16, 4)


def test_fewer_than_three_is_refused_and_none_means_not_given():
    e = raises(ValueError, dose.solve, power_w=10, area_cm2=100)
    assert "not enough to solve for energy_j, fluence_j_cm2, time_s:" in str(e)
    assert "given: power_w, area_cm2" in str(e)
    e = raises(ValueError, dose.solve)
    assert "given: nothing" in str(e)
    _same(dose.solve(power_w=10, fluence_j_cm2=8, area_cm2=100, time_s=None, energy_j=None),
          FULL)


def test_consistent_over_determined_input_is_accepted_within_the_tolerance():
    _same(dose.solve_dict(FULL), FULL)
    # 1000 J / 7 W = 142.857 s written out as 142.9 s: within 0.5 %
    r = dose.solve(energy_j=1000, power_w=7, time_s=142.9, area_cm2=100)
    assert r["time_s"] == 142.9
    assert dose.TOLERANCE == 0.005


def test_energy_that_is_not_power_times_time_is_refused_naming_the_fields():
    # The peer GUI's lumbar protocol: 40 W x 720 s is 28 800 J, not 3600 J.
    e = raises(ValueError, dose.solve, power_w=40, time_s=720, energy_j=3600, area_cm2=360)
    msg = str(e)
    assert msg.startswith("dose: energy_j, time_s, power_w: inconsistent"), msg
    assert "power_w x time_s = 40 x 720 = 28800 J but energy_j = 3600 J" in msg, msg
    # Just beyond the tolerance is refused too
    e = raises(ValueError, dose.solve, power_w=10, time_s=80, energy_j=804.1, area_cm2=100)
    assert "inconsistent" in str(e)


def test_a_contradiction_through_derived_values_names_every_given_field_involved():
    # energy from power x time (800 J) against fluence x area (880 J)
    e = raises(ValueError, dose.solve, power_w=10, time_s=80, fluence_j_cm2=8, area_cm2=110)
    msg = str(e)
    assert msg.startswith("dose: fluence_j_cm2, time_s, power_w, area_cm2: inconsistent"), msg
    assert "energy_j = 800 J (from time_s, power_w)" in msg, msg
    e = raises(ValueError, dose.solve, irradiance_w_cm2=0.2, power_w=10, area_cm2=100)
    assert str(e).startswith("dose: irradiance_w_cm2, power_w, area_cm2: inconsistent")


def test_bad_values_are_refused_naming_the_field():
    cases = (("power_w", "10", "must be a number, got '10'"),
             ("power_w", True, "must be a number, got True"),
             ("time_s", [80], "must be a number"),
             ("area_cm2", float("nan"), "must be finite and > 0"),
             ("energy_j", float("inf"), "must be finite and > 0"),
             ("fluence_j_cm2", 0, "must be finite and > 0, got 0"),
             ("irradiance_w_cm2", -0.1, "must be finite and > 0"),
             ("power_w", 100.5, "100.5 W is outside 0.001..100 W"),
             ("power_w", 0.0005, "is outside 0.001..100 W"),
             ("time_s", 86401, "86401 s is outside 0.01..86400 s"),
             ("area_cm2", 20000, "is outside 0.01..10000 cm2"),
             ("energy_j", 200000, "is outside 0.001..100000 J"),
             ("fluence_j_cm2", 2000, "is outside 0.001..1000 J/cm2"),
             ("irradiance_w_cm2", 101, "is outside 1e-05..100 W/cm2"))
    for key, value, words in cases:
        given = dict(FULL)
        given[key] = value
        e = raises(ValueError, dose.solve_dict, given)
        assert str(e).startswith("dose.%s: " % key), (key, str(e))
        assert words in str(e), (key, str(e))


def test_an_unknown_field_is_refused_by_name():
    e = raises(ValueError, dose.solve, power_w=10, fluence_j_cm2=8, area_cm2=100, watts=3)
    assert str(e).startswith("dose.watts: unknown field (known: energy_j,"), str(e)


def test_a_derived_value_outside_its_limits_is_refused_naming_it_and_its_origin():
    e = raises(ValueError, dose.solve, power_w=100, time_s=1, area_cm2=0.01)
    assert str(e).startswith("dose.fluence_j_cm2: 10000 J/cm2 (energy_j / area_cm2) is outside"), \
        str(e)
    e = raises(ValueError, dose.solve, energy_j=100000, power_w=0.5, area_cm2=100)
    assert str(e).startswith("dose.time_s: 200000 s (energy_j / power_w) is outside"), str(e)
    # A derived value at a limit passes although the division rounds it just above, as 1.04 / 0.0104
    # does in doubles and 1.12 / 0.0112 in both doubles and the chip's single floats; it is kept
    # at the limit.
    for power_w, area_cm2 in ((1.04, 0.0104), (1.12, 0.0112)):
        r = dose.solve(power_w=power_w, area_cm2=area_cm2, time_s=1)
        assert 100.0 - ulps(100.0, 4) <= r["irradiance_w_cm2"] <= 100.0, r


def test_the_caller_names_its_own_fields_and_place():
    e = raises(ValueError, dose.solve_dict, {"power_w": 10, "fluence_j_cm2": "8",
                                             "area_cm2": 100}, 0.005, "protocol 'x'",
               {"fluence_j_cm2": "dose_j_cm2"})
    assert str(e) == "protocol 'x'.dose_j_cm2: must be a number, got '8'", str(e)


def test_pulsed_peak_and_average_power_both_ways():
    assert dose.peak_power_w(6.0, 50) == 12.0
    assert dose.average_power_w(12.0, 50) == 6.0
    # Exact but for its four roundings (1e-15 W in doubles, 4e-6 W in the chip's single floats).
    assert abs(dose.peak_power_w(dose.average_power_w(15.0, 33), 33) - 15.0) <= ulps(15.0, 4)
    for duty in (0, 0.5, 100, 99.5, True, "50", None):
        e = raises(ValueError, dose.peak_power_w, 6.0, duty)
        assert str(e).startswith("dose.duty_pct: must be a number within 1..99"), str(e)
    raises(ValueError, dose.average_power_w, 6.0, 100)
