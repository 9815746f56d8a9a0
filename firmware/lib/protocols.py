# The protocol library: preset treatments by region and condition, kept as data
# (protocols.json on the device) and checked by the code that loads it. A published therapy-laser
# GUI listed a lumbar protocol as 40 W x 720 s = 3600 J: here every preset writes out its energy
# and time, and a preset whose numbers contradict each other is refused by name.
#
#   library = protocols.load("protocols.json")        # ValueError naming the preset and field
#   spec = protocols.spec_for(library, "knee", skin_type=5)   # -> treatment.Treatment's spec
#   protocols.check_all(library, board)               # every preset, every skin type, this board
#
# A custom protocol is a dict of the same fields (only power_w, dose_j_cm2 and area_cm2 are
# required; mode defaults to "cw"): spec_for(library, {...}) checks it exactly as a preset, and
# check_one({...}, board) checks it against a board. See docs/protocols.md.
import json

import calibration as calibration_module
import dose
import treatment as treatment_module
from fields import is_number, is_whole

FORMAT = 1
MODES = ("cw", "pulsed")
PULSE_HZ_LIMITS = (1, 20000)
DUTY_PCT_LIMITS = (1, 99)
SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")  # Fitzpatrick; skin_type is given as 1..6
# Darker skin absorbs more of the light at the surface: for types V and VI the power is lowered
# (same dose, so a longer time). A preset may give its own factors; these are the default.
DEFAULT_SKIN_POWER_FACTOR = (1.0, 1.0, 1.0, 1.0, 0.8, 0.6)
SKIN_FACTOR_LIMITS = (0.25, 1.0)
TOLERANCE = 0.005  # energy_j = dose x area and time_s = energy / power, within 0.5 %
MAX_NAME = 40

_FIELDS = ("name", "region", "condition", "power_w", "mode", "pulse_hz", "duty_pct",
           "dose_j_cm2", "area_cm2", "energy_j", "time_s", "skin_power_factor", "source")
# Fields a library preset must have; a custom protocol needs only power_w, dose_j_cm2, area_cm2.
_REQUIRED = ("name", "region", "condition", "power_w", "mode", "dose_j_cm2", "area_cm2",
             "energy_j", "time_s", "skin_power_factor", "source")
_CUSTOM_REQUIRED = ("power_w", "dose_j_cm2", "area_cm2")
_TEXT = ("region", "condition", "source")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
_DOSE_NAMES = {"fluence_j_cm2": "dose_j_cm2"}  # the dose module's name -> this file's


def load(path):
    """The library in the JSON file at `path`; ValueError naming the preset and field if bad."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ValueError("%s: cannot read it (%s)" % (path, e))
    except ValueError as e:
        raise ValueError("%s: not valid JSON (%s)" % (path, e))
    return build(data)


def build(data):
    """A library from the file's decoded JSON: {"format", "description", "protocols": [...]}.

    The presets keep the file's order (a list, not a dict: MicroPython's dicts are unordered)."""
    if not isinstance(data, dict):
        raise ValueError("protocols: must be an object with format and protocols")
    for key in data:
        if key not in ("format", "description", "protocols"):
            raise ValueError("protocols.%s: unknown field" % key)
    if data.get("format") != FORMAT:
        raise ValueError("protocols.format: must be %d, got %r" % (FORMAT, data.get("format")))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError("protocols.description: must be text")
    raw = data.get("protocols")
    if not isinstance(raw, list) or not raw:
        raise ValueError("protocols.protocols: must be a non-empty list of presets")
    presets = []
    seen = []
    for i in range(len(raw)):
        preset = check_protocol(raw[i], "protocols[%d]" % i)
        if preset["name"] in seen:
            raise ValueError("protocols[%d].name: %r is used twice" % (i, preset["name"]))
        seen.append(preset["name"])
        presets.append(preset)
    return {"format": FORMAT, "description": description, "protocols": presets}


def names(library):
    """The preset names, in the file's order."""
    return [p["name"] for p in library["protocols"]]


def find(library, name):
    """The checked preset called `name`; ValueError naming it if there is none."""
    if library is not None:
        for preset in library["protocols"]:
            if preset["name"] == name:
                return preset
    known = ", ".join(names(library)) if library is not None else "no library loaded"
    raise ValueError("protocol %r: unknown (known: %s)" % (name, known))


def check_protocol(raw, where="protocol", custom=False):
    """A preset (or, with custom=True, a custom protocol) checked and normalised: every number a
    float within dose.LIMITS, energy_j and time_s agreeing with dose x area and energy / power
    within TOLERANCE (computed when a custom protocol leaves them out), mode and skin factors
    filled in. ValueError "protocol 'NAME'.FIELD: ..." otherwise."""
    if not isinstance(raw, dict):
        raise ValueError("%s: must be an object" % where)
    name = raw.get("name", "custom" if custom else None)
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or \
            any(c not in _NAME_CHARS for c in name):
        raise ValueError("%s.name: must be 1..%d characters a-z, 0-9 or '-', got %r"
                         % (where, MAX_NAME, name))
    where = "protocol %r" % name
    for key in raw:
        if key not in _FIELDS:
            raise ValueError("%s.%s: unknown field (known: %s)" % (where, key, ", ".join(_FIELDS)))
    for key in (_CUSTOM_REQUIRED if custom else _REQUIRED):
        if key not in raw:
            raise ValueError("%s.%s: missing" % (where, key))
    preset = {"name": name}
    for key in _TEXT:
        text = raw.get(key, "")
        if not isinstance(text, str) or not (text or custom):
            raise ValueError("%s.%s: must be text, got %r" % (where, key, text))
        preset[key] = text
    for key in ("power_w", "dose_j_cm2", "area_cm2", "energy_j", "time_s"):
        if key in raw and raw[key] is None:  # None would read as "not given" to dose.solve
            raise ValueError("%s.%s: must be a number, got None" % (where, key))
    given = {"power_w": raw["power_w"], "fluence_j_cm2": raw["dose_j_cm2"],
             "area_cm2": raw["area_cm2"], "energy_j": raw.get("energy_j"),
             "time_s": raw.get("time_s")}
    solved = dose.solve_dict(given, TOLERANCE, where, _DOSE_NAMES)
    preset["power_w"] = solved["power_w"]
    preset["dose_j_cm2"] = solved["fluence_j_cm2"]
    preset["area_cm2"] = solved["area_cm2"]
    # As written when written (they agree within TOLERANCE), else computed.
    preset["energy_j"] = float(raw["energy_j"]) if "energy_j" in raw else solved["energy_j"]
    preset["time_s"] = float(raw["time_s"]) if "time_s" in raw else solved["time_s"]
    _check_mode(raw, preset, where)
    preset["skin_power_factor"] = _skin_factors(raw, where)
    for skin_type in range(1, len(SKIN_TYPES) + 1):
        _adjusted(preset, skin_type)  # every skin type must give a valid dose too
    return preset


def spec_for(library, protocol, skin_type=None):
    """The spec for treatment.Treatment: power_w, dose_j_cm2, area_cm2 and, when pulsed, mode,
    pulse_hz and duty_pct. `protocol` is a preset name or a custom protocol dict. skin_type 1..6
    (Fitzpatrick I..VI) scales the power by the preset's factor: the same dose, a longer time."""
    return _spec(_resolve(library, protocol), skin_type)


def describe(library, protocol, skin_type=None):
    """Everything about a preset at a skin type, for display: the six dose quantities (time_s
    and irradiance_w_cm2 for the adjusted power), peak_w, mode, skin type, region, source..."""
    preset = _resolve(library, protocol)
    values = _adjusted(preset, skin_type)
    info = {"skin_type": skin_type, "peak_w": values["power_w"]}
    for key in ("name", "region", "condition", "mode", "area_cm2", "source"):
        info[key] = preset[key]
    for key in ("energy_j", "irradiance_w_cm2", "time_s", "power_w"):
        info[key] = values[key]
    info["dose_j_cm2"] = values["fluence_j_cm2"]
    if preset["mode"] == "pulsed":
        info["pulse_hz"] = preset["pulse_hz"]
        info["duty_pct"] = preset["duty_pct"]
        info["peak_w"] = dose.peak_power_w(values["power_w"], preset["duty_pct"])
    return info


def check_one(protocol, board, library=None):
    """Check a preset (by name, with `library`) or a custom protocol against a validated board,
    for every skin type, with the firmware's own treatment.for_board. Returns how many specs were
    built; ValueError naming the protocol (and skin type) the board cannot deliver."""
    return _check_on_board(_resolve(library, protocol), board)


def check_all(library, board):
    """check_one for every preset of the library, in order; ValueError naming the first preset
    (and skin type) the board cannot deliver. Returns how many specs were built."""
    count = 0
    for preset in library["protocols"]:
        count += _check_on_board(preset, board)
    return count


def _check_on_board(preset, board):
    cal = calibration_module.for_board(board)
    lowest_w = cal.lowest_lasing_w()
    count = 0
    for skin_type in (None, 1, 2, 3, 4, 5, 6):
        where = "protocol %r" % preset["name"]
        if skin_type is not None:
            where += " (skin type %s)" % SKIN_TYPES[skin_type - 1]
        spec = _spec(preset, skin_type)
        # Below the lowest power the power meter measured the calibration is a guess.
        if spec["power_w"] < lowest_w:
            raise ValueError("%s.power_w: %g W is under this board's lowest calibrated lasing "
                             "power of %g W" % (where, spec["power_w"], lowest_w))
        if preset["mode"] == "pulsed":
            peak_w = dose.peak_power_w(spec["power_w"], preset["duty_pct"])
            if peak_w > cal.max_power_w * (1 + dose.ROUNDING):  # a peak at the maximum passes
                raise ValueError("%s.duty_pct: the peak power %g W (%g W at %g %%) exceeds this "
                                 "board's %g W" % (where, peak_w, spec["power_w"],
                                                   preset["duty_pct"], cal.max_power_w))
        try:
            treatment_module.for_board(spec, board)
        except ValueError as e:
            raise ValueError("%s: %s" % (where, e))
        count += 1
    return count


def _resolve(library, protocol):
    if isinstance(protocol, str):
        return find(library, protocol)
    if isinstance(protocol, dict):
        return check_protocol(protocol, custom=True)
    raise ValueError("protocol: must be a preset name or a protocol object, got %r" % (protocol,))


def _spec(preset, skin_type):
    values = _adjusted(preset, skin_type)
    spec = {"power_w": values["power_w"], "dose_j_cm2": preset["dose_j_cm2"],
            "area_cm2": preset["area_cm2"]}
    if preset["mode"] == "pulsed":
        spec["mode"] = "pulsed"
        spec["pulse_hz"] = preset["pulse_hz"]
        spec["duty_pct"] = preset["duty_pct"]
    return spec


def _check_mode(raw, preset, where):
    mode = raw.get("mode", "cw")
    if mode not in MODES:
        raise ValueError("%s.mode: must be \"cw\" or \"pulsed\", got %r" % (where, mode))
    preset["mode"] = mode
    if mode == "cw":
        for key in ("pulse_hz", "duty_pct"):
            if key in raw:
                raise ValueError("%s.%s: only for mode \"pulsed\"" % (where, key))
        return
    hz = raw.get("pulse_hz")
    if not is_whole(hz) or not PULSE_HZ_LIMITS[0] <= hz <= PULSE_HZ_LIMITS[1]:
        raise ValueError("%s.pulse_hz: must be a whole number of Hz within %d..%d, got %r"
                         % (where, PULSE_HZ_LIMITS[0], PULSE_HZ_LIMITS[1], hz))
    duty = raw.get("duty_pct")
    if not is_number(duty) or not DUTY_PCT_LIMITS[0] <= duty <= DUTY_PCT_LIMITS[1]:
        raise ValueError("%s.duty_pct: must be a number within %d..%d, got %r"
                         % (where, DUTY_PCT_LIMITS[0], DUTY_PCT_LIMITS[1], duty))
    preset["pulse_hz"] = hz
    preset["duty_pct"] = duty
    peak_w = dose.peak_power_w(preset["power_w"], duty)
    if peak_w > dose.LIMITS["power_w"][1]:
        raise ValueError("%s.duty_pct: the peak power %g W is above %g W"
                         % (where, peak_w, dose.LIMITS["power_w"][1]))


def _skin_factors(raw, where):
    key = "skin_power_factor"
    if key not in raw:
        return DEFAULT_SKIN_POWER_FACTOR
    factors = raw[key]
    if not isinstance(factors, (list, tuple)) or len(factors) != len(SKIN_TYPES):
        raise ValueError("%s.%s: must be a list of %d factors, one per Fitzpatrick type I..VI"
                         % (where, key, len(SKIN_TYPES)))
    low, high = SKIN_FACTOR_LIMITS
    for i in range(len(factors)):
        f = factors[i]
        if not is_number(f) or not low <= f <= high:
            raise ValueError("%s.%s[%d]: must be a number within %g..%g, got %r"
                             % (where, key, i, low, high, f))
        if i and f > factors[i - 1]:
            raise ValueError("%s.%s[%d]: %g for type %s is above %g for type %s: darker skin "
                             "never gets more power" % (where, key, i, f, SKIN_TYPES[i],
                                                        factors[i - 1], SKIN_TYPES[i - 1]))
    return tuple(float(f) for f in factors)


def _adjusted(preset, skin_type):
    """The six dose quantities at `skin_type`'s power (the written power when None)."""
    power_w = preset["power_w"]
    if skin_type is not None:
        if not is_whole(skin_type) or not 1 <= skin_type <= len(SKIN_TYPES):
            raise ValueError("skin_type: must be a Fitzpatrick skin type 1..6 (I..VI), got %r"
                             % (skin_type,))
        factor = preset["skin_power_factor"][skin_type - 1]
        if factor != 1.0:
            power_w = round(power_w * factor, 3)
    where = "protocol %r" % preset["name"]
    if skin_type is not None:
        where += " (skin type %s)" % SKIN_TYPES[skin_type - 1]
    return dose.solve_dict({"power_w": power_w, "fluence_j_cm2": preset["dose_j_cm2"],
                            "area_cm2": preset["area_cm2"]}, TOLERANCE, where, _DOSE_NAMES)
