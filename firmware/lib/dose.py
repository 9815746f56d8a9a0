# Dose arithmetic for a therapy laser: energy, fluence, irradiance, time, power and area.
#
#   energy_j      = power_w * time_s              (power is the average power; pulsed: peak x duty)
#   energy_j      = fluence_j_cm2 * area_cm2
#   power_w       = irradiance_w_cm2 * area_cm2
#   fluence_j_cm2 = irradiance_w_cm2 * time_s     (follows from the three above)
#
# Any three quantities that are not all in one of these relations fix the other three, e.g.
# solve(power_w=10, fluence_j_cm2=8, area_cm2=100) -> all six. More than that is accepted when
# it agrees within TOLERANCE (relative); a disagreement is refused naming the fields involved.
# Every value, given or derived, must be a real number, finite, > 0 and within LIMITS.
#
# Pure: no clock, no hardware, no allocation beyond the result. Runs on CPython and MicroPython.
import math

from fields import is_number

FIELDS = ("energy_j", "fluence_j_cm2", "irradiance_w_cm2", "time_s", "power_w", "area_cm2")
UNITS = {"energy_j": "J", "fluence_j_cm2": "J/cm2", "irradiance_w_cm2": "W/cm2",
         "time_s": "s", "power_w": "W", "area_cm2": "cm2"}
# Inclusive limits of every value, given or derived. They are sanity bounds for a therapy laser
# (from a 1 mW Class 3B probe on a 1 mm2 point to a 100 W Class 4 over 1 m2), not a board's
# limits: the board's power, energy and shortest treatment are checked by treatment.py.
LIMITS = {
    "energy_j": (0.001, 100000.0),       # 1 mJ .. 100 kJ
    "fluence_j_cm2": (0.001, 1000.0),    # 1 mJ/cm2 .. 1 kJ/cm2
    "irradiance_w_cm2": (0.00001, 100.0),  # 10 uW/cm2 .. 100 W/cm2
    "time_s": (0.01, 86400.0),           # 10 ms .. one day
    "power_w": (0.001, 100.0),           # 1 mW .. 100 W
    "area_cm2": (0.01, 10000.0),         # 1 mm2 .. 1 m2
}
TOLERANCE = 0.005  # over-determined inputs must agree within 0.5 % (written-out values round)
# What a derivation's own rounding may add to a value, relative: a few units in the last digit of
# the ESP32's single floats (2**-23 = 1.2e-7), to which a value and the chain that derived it
# round. Far below any limit's meaning, and above zero: 1 + 1e-9 is exactly 1 in single floats.
ROUNDING = 1e-6
# product = factor_a * factor_b
RELATIONS = (("energy_j", "power_w", "time_s"),
             ("energy_j", "fluence_j_cm2", "area_cm2"),
             ("power_w", "irradiance_w_cm2", "area_cm2"),
             ("fluence_j_cm2", "irradiance_w_cm2", "time_s"))
DUTY_PCT_LIMITS = (1, 99)


def solve(**given):
    """All six quantities from a sufficient subset, as a dict keyed by FIELDS (floats).

    A keyword given as None counts as not given. ValueError names the field(s) at fault."""
    return solve_dict(given)


def solve_dict(given, tol=TOLERANCE, where="dose", names=None):
    """solve() for a dict. `where` prefixes the messages ("dose.power_w: ..."); `names` maps a
    field to the name the caller's user knows it by (e.g. fluence_j_cm2 -> dose_j_cm2)."""
    values = {}
    sources = {}  # field -> the given fields its value came from
    for key in given:
        if key not in LIMITS:
            raise ValueError("%s.%s: unknown field (known: %s)"
                             % (where, _name(key, names), ", ".join(_names(FIELDS, names))))
    for key in FIELDS:  # a fixed order: the first bad field is always the same one
        if given.get(key) is not None:
            values[key] = check(key, given[key], where, names)
            sources[key] = (key,)
    changed = True
    while changed:
        changed = False
        for product, a, b in RELATIONS:
            have_p, have_a, have_b = product in values, a in values, b in values
            if have_p and have_a and have_b:
                _agree(product, a, b, values, sources, tol, where, names)
            elif have_a and have_b:
                _derive(product, values[a] * values[b], (a, b), " x ", values, sources, where,
                        names)
                changed = True
            elif have_p and have_a:
                _derive(b, values[product] / values[a], (product, a), " / ", values, sources,
                        where, names)
                changed = True
            elif have_p and have_b:
                _derive(a, values[product] / values[b], (product, b), " / ", values, sources,
                        where, names)
                changed = True
    missing = [key for key in FIELDS if key not in values]
    if missing:
        given_names = [key for key in FIELDS if key in values and sources[key] == (key,)]
        raise ValueError("%s: not enough to solve for %s: give three of %s, not all three from "
                         "one relation (E = P x t, E = fluence x area, P = irradiance x area); "
                         "given: %s" % (where, ", ".join(_names(missing, names)),
                                        ", ".join(_names(FIELDS, names)),
                                        ", ".join(_names(given_names, names)) or "nothing"))
    return values


def check(key, value, where="dose", names=None):
    """`value` as a float if it is a real, finite number within LIMITS[key]; else ValueError."""
    name = _name(key, names)
    if not is_number(value):
        raise ValueError("%s.%s: must be a number, got %r" % (where, name, value))
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("%s.%s: must be finite and > 0, got %r" % (where, name, value))
    low, high = LIMITS[key]
    if not low <= value <= high:
        raise ValueError("%s.%s: %g %s is outside %g..%g %s"
                         % (where, name, value, UNITS[key], low, high, UNITS[key]))
    return value


def peak_power_w(average_w, duty_pct):
    """Peak power of a pulsed beam whose average is `average_w` at `duty_pct` % on."""
    return average_w * 100.0 / _duty(duty_pct)


def average_power_w(peak_w, duty_pct):
    """Average power of a pulsed beam of peak `peak_w` at `duty_pct` % on."""
    return peak_w * _duty(duty_pct) / 100.0


def _duty(duty_pct):
    if not is_number(duty_pct) or not DUTY_PCT_LIMITS[0] <= duty_pct <= DUTY_PCT_LIMITS[1]:
        raise ValueError("dose.duty_pct: must be a number within %d..%d, got %r"
                         % (DUTY_PCT_LIMITS[0], DUTY_PCT_LIMITS[1], duty_pct))
    return float(duty_pct)


def _derive(key, value, operands, op, values, sources, where, names):
    low, high = LIMITS[key]
    # The relation's own rounding must not refuse a value at a limit: compare with slack, and
    # keep the value within its limits.
    if not (low * (1 - ROUNDING) <= value <= high * (1 + ROUNDING)):
        raise ValueError("%s.%s: %g %s (%s) is outside %g..%g %s"
                         % (where, _name(key, names), value, UNITS[key],
                            op.join(_names(operands, names)), low, high, UNITS[key]))
    values[key] = min(max(value, low), high)
    merged = []
    for field in FIELDS:
        for operand in operands:
            if field in sources[operand] and field not in merged:
                merged.append(field)
    sources[key] = tuple(merged)


def _agree(product, a, b, values, sources, tol, where, names):
    p = values[product]
    q = values[a] * values[b]
    if abs(p - q) <= tol * max(p, q):
        return
    involved = [f for f in FIELDS
                if f in sources[product] or f in sources[a] or f in sources[b]]
    raise ValueError("%s: %s: inconsistent: %s x %s = %g x %g = %g %s but %s = %g %s%s "
                     "(more than %g %% apart)"
                     % (where, ", ".join(_names(involved, names)), _name(a, names),
                        _name(b, names), values[a], values[b], q, UNITS[product],
                        _name(product, names), p, UNITS[product],
                        _origin(product, sources, names), tol * 100))


def _origin(key, sources, names):
    if sources[key] == (key,):
        return ""
    return " (from %s)" % ", ".join(_names(sources[key], names))


def _name(key, names):
    if names and key in names:
        return names[key]
    return key


def _names(keys, names):
    return [_name(k, names) for k in keys]
