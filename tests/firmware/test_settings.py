# The settings store: a power cut at every step of a save, damaged copies, validation that names
# the field and writes nothing, the effective board, the PIN, and the due date.
import json

import settings as st
import treatment as tr
from fakeflash import FakeFlash, PowerCut
from support import load_board, raises

BOARD = load_board()
CUR, PREV = "settings.json", "settings.prev"
# A diode that measured a little weaker than the board file's design curve.
FIRST = {"calibration": [[0, 0.0], [6000, 0.0], [16000, 3.0], [40000, 9.5], [65535, 16.0]],
         "calibrated_on": "2026-03-01"}
SPEC = {"power_w": 10.0, "dose_j_cm2": 8.0, "area_cm2": 100.0}  # 800 J


def _stored(*saves, keep_unclosed=True):
    """A flash and its Settings after `saves` (the first from an empty flash)."""
    flash = FakeFlash(keep_unclosed)
    s = st.Settings(flash, BOARD)
    for changes in saves:
        s.save(changes)
    return flash, s


def _copy(flash, keep_unclosed=True):
    other = FakeFlash(keep_unclosed)
    other.files = dict(flash.files)
    return other


def _same_values(a, b):
    # Through JSON and sorted keys: the interpreters order dict keys differently.
    return json.dumps(_sorted(a)) == json.dumps(_sorted(b))


def _sorted(value):
    if isinstance(value, dict):
        return [[k, _sorted(value[k])] for k in sorted(value)]
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


# -- a power cut at every step ---------------------------------------------------------------


def test_a_power_cut_at_every_step_of_a_save_leaves_the_old_or_the_new_values():
    # Two saves first, so that both copies exist; a two-point curve keeps the files short.
    short = {"calibration": [[0, 0.0], [65535, 16.0]], "calibrated_on": "2026-03-01"}
    base, before = _stored(short, {"due_days": 200})
    old = before.values
    changes = {"calibrated_on": "2026-09-15", "limits": {"max_power_w": 12.5}}
    # The steps of one uncut save: every byte of both files, and the two renames.
    flash = _copy(base)
    s = st.Settings(flash, BOARD)
    s.save(changes)
    steps, new = flash.steps, s.values
    assert steps == len(flash.files[PREV]) + len(flash.files[CUR]) + 2, steps
    assert _same_values(st.Settings(_copy(flash), BOARD, PREV, "none").values, old)
    good_prev = {}  # a previous copy's bytes -> whether it loads (each distinct copy loaded once)
    for keep_unclosed in (True, False):
        flash = FakeFlash(keep_unclosed)
        flash.files = dict(base.files)
        s = st.Settings(flash, BOARD)
        # One object for every cut on a flash restored each time: a save cut short must leave
        # the object as it was, or the next attempt would write something else.
        for cut in range(steps + 1):
            flash.files = dict(base.files)
            flash.cut_after(cut)
            try:
                s.save(changes)
                assert cut == steps, "no power cut at step %d of %d" % (cut, steps)
            except PowerCut:
                assert _same_values(s.values, old) and s.source == CUR, cut
            after = st.Settings(flash, BOARD)  # the device boots again
            where = (keep_unclosed, cut)
            assert after.problem is None and after.notice is None, (where, after.problem)
            assert after.source == CUR, where
            # Old or new, and exactly: the new values arrive with the last step, the rename.
            assert _same_values(after.values, new if cut == steps else old), where
            prev = flash.files[PREV]
            if prev not in good_prev:
                good_prev[prev] = st.Settings(_copy(flash), BOARD, PREV, "none").problem is None
            assert good_prev[prev], where
    assert len(good_prev) == 2  # the copy before the save, and the values it replaced


def test_a_save_keeps_the_current_values_as_the_previous_copy():
    flash, s = _stored(FIRST)
    assert PREV not in flash.files  # the first save had no good copy to keep
    first = s.values
    s.save({"due_days": 90})
    assert s.source == CUR and s.values["due_days"] == 90 and s.problem is None
    assert _same_values(st.Settings(flash, BOARD, PREV, "none").values, first)
    assert sorted(flash.files) == [CUR, PREV]  # no temporary file left behind


# -- damaged copies --------------------------------------------------------------------------


def _fallback(damage, reason):
    flash, s = _stored(FIRST, {"due_days": 200})
    flash.files[CUR] = damage(flash.files[CUR])
    loaded = st.Settings(flash, BOARD)
    assert loaded.source == PREV and loaded.problem is None, (reason, loaded.problem)
    assert loaded.values["due_days"] == 365  # the previous copy's values
    assert loaded.notice == "settings.json: %s; using settings.prev" % reason, loaded.notice
    return loaded


def _flip(data, at):
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_a_damaged_current_file_falls_back_to_the_previous_copy():
    _fallback(lambda d: _flip(d, len(d) - 10), "checksum mismatch")
    _fallback(lambda d: d[:len(d) // 2], "truncated or damaged: not two whole lines")
    _fallback(lambda d: b"", "empty")
    _fallback(lambda d: d.replace(b'"format": 1', b'"format": 2'),
              "format 2, this firmware reads format 1")
    _fallback(lambda d: b"not json\n" + d.split(b"\n")[1] + b"\n", "damaged header")


def test_every_flipped_byte_and_every_truncation_is_detected():
    flash, s = _stored(FIRST)  # no previous copy: a damaged file must lock, not load
    good = flash.files[CUR]
    damaged = [_flip(good, at) for at in range(len(good))]
    damaged += [good[:size] for size in range(len(good))]
    for data in damaged:
        flash.files[CUR] = data
        loaded = st.Settings(flash, BOARD)
        assert loaded.values is None, data
        assert loaded.problem.startswith("settings unusable: settings.json: "), loaded.problem
        assert loaded.problem.endswith("; settings.prev: missing"), loaded.problem
    flash.files[CUR] = good
    assert st.Settings(flash, BOARD).problem is None


def test_both_copies_bad_lock_emission_naming_both():
    flash, s = _stored(FIRST, {"due_days": 200, "pin": {"new": "4321"}})
    flash.files[CUR] = _flip(flash.files[CUR], 100)
    del flash.files[PREV]
    loaded = st.Settings(flash, BOARD)
    assert loaded.values is None and loaded.source is None and loaded.notice is None
    assert loaded.problem == ("settings unusable: settings.json: checksum mismatch; "
                              "settings.prev: missing"), loaded.problem
    assert loaded.board is BOARD and loaded.due_on() is None
    assert loaded.check_pin(st.FACTORY_PIN) and not loaded.check_pin("4321")


def test_nothing_stored_asks_for_calibration_and_takes_the_factory_pin():
    loaded = st.Settings(FakeFlash(), BOARD)
    assert loaded.values is None and loaded.board is BOARD
    assert loaded.problem == "no settings stored: calibrate the device (service)"
    assert loaded.check_pin(st.FACTORY_PIN)
    assert not loaded.check_pin("0000") and not loaded.check_pin(None)


def test_the_factory_pin_is_refused_once_a_pin_is_set_even_from_the_previous_copy():
    flash, s = _stored(dict(FIRST, pin={"new": "4321"}), {"due_days": 200})
    assert s.check_pin("4321") and not s.check_pin(st.FACTORY_PIN)
    flash.files[CUR] = b""
    loaded = st.Settings(flash, BOARD)
    assert loaded.source == PREV
    assert loaded.check_pin("4321") and not loaded.check_pin(st.FACTORY_PIN)


def test_a_checksummed_file_with_invalid_values_counts_as_invalid():
    # Written for a board whose diode reaches 16 W: this one must reach 15 W.
    values = dict(FIRST, calibration=[[0, 0.0], [65535, 14.0]])
    flash = FakeFlash()
    flash.files[CUR] = st.encode(values)
    loaded = st.Settings(flash, BOARD)
    assert loaded.values is None
    assert loaded.problem.startswith("settings unusable: settings.json: calibration: reaches "
                                     "only 14.000 W"), loaded.problem
    assert loaded.problem.endswith("; settings.prev: missing"), loaded.problem


def test_an_image_the_host_encodes_loads_with_the_defaults():
    flash = FakeFlash()
    flash.files[CUR] = st.encode(FIRST)
    loaded = st.Settings(flash, BOARD)
    assert loaded.problem is None and loaded.source == CUR
    assert loaded.values["due_days"] == 365 and loaded.values["limits"] == {}
    assert loaded.check_pin(st.FACTORY_PIN)
    header = json.loads(flash.files[CUR].split(b"\n")[0])
    assert header["format"] == st.FORMAT == 1 and len(header["sha256"]) == 64


# -- validation --------------------------------------------------------------------------------


def _refused(s, flash, changes, field):
    files, values = dict(flash.files), json.dumps(_sorted(s.values))
    board, source, problem, notice = s.board, s.source, s.problem, s.notice
    e = raises(st.SettingsError, s.save, changes)
    assert str(e).startswith(field + ":") or str(e).startswith(field + "["), (changes, str(e))
    assert flash.files == files, changes
    assert json.dumps(_sorted(s.values)) == values, changes
    assert (s.board, s.source, s.problem, s.notice) == (board, source, problem, notice)
    return str(e)


def test_every_validation_error_names_its_field_and_changes_nothing():
    flash, s = _stored(FIRST)
    cal = FIRST["calibration"]
    for bad in ("x", [], [[0, 0.0]], [0, 0.0, 65535, 16.0], [[0, 0.0], [65535, 16.0, 1]],
                [[0, 0.0], [65535.0, 16.0]], [[0, 0.0], [70000, 16.0]], [[0, 0.0], [65535, "16"]],
                [[0, 0.0], [65535, float("nan")]], [[0, 0.0], [65535, 99.0]]):
        _refused(s, flash, {"calibration": bad}, "calibration")
    assert "duty must increase" in _refused(
        s, flash, {"calibration": [[0, 0.0], [30000, 5.0], [20000, 8.0], [65535, 16.0]]},
        "calibration[2]")
    assert "must start at [0, 0]" in _refused(
        s, flash, {"calibration": [[100, 0.0], [65535, 16.0]]}, "calibration[0]")
    assert "reaches only 12.000 W" in _refused(
        s, flash, {"calibration": cal[:3] + [[65535, 12.0]]}, "calibration")
    assert _refused(s, flash, {"limits": {"max_power_w": 15.5}}, "limits.max_power_w") == \
        "limits.max_power_w: must not exceed the board's 15 W"
    assert "the board's 10000 J" in _refused(s, flash, {"limits": {"max_energy_j": 20000}},
                                             "limits.max_energy_j")
    for bad in (0, -1, "5", True):
        _refused(s, flash, {"limits": {"max_power_w": bad}}, "limits.max_power_w")
    _refused(s, flash, {"limits": {"max_energy_j": 0.5}}, "limits.max_energy_j")
    _refused(s, flash, {"limits": {"max_temp_c": 30}}, "limits.max_temp_c")
    _refused(s, flash, {"limits": [10]}, "limits")
    for bad in ("2026-02-30", "2027-02-29", "2026-13-01", "2026-00-10", "tomorrow", "2026-3-1",
                "26-03-01", "1999-12-31", 20260301, None):
        _refused(s, flash, {"calibrated_on": bad}, "calibrated_on")
    for bad in (0, -5, 3651, 1.5, "365", True):
        _refused(s, flash, {"due_days": bad}, "due_days")
    for bad in ("12a4", "123", "1234567890123", "", " 1234", 1234):
        _refused(s, flash, {"pin": {"new": bad}}, "pin")
        raises(st.SettingsError, s.set_pin, bad)
    _refused(s, flash, {"pin": "1234"}, "pin")
    _refused(s, flash, {"pin": {"salt": "00" * 16, "hash": "00" * 32}}, "pin")  # never a hash
    _refused(s, flash, {"colour": "red"}, "colour")
    _refused(s, flash, ["calibration"], "settings")


def test_the_first_save_needs_a_calibration_and_its_date():
    flash = FakeFlash()
    s = st.Settings(flash, BOARD)
    _refused(s, flash, {"calibrated_on": "2026-03-01"}, "calibration")
    _refused(s, flash, {"calibration": FIRST["calibration"]}, "calibrated_on")
    _refused(s, flash, {"due_days": 30}, "calibration")
    s.save(FIRST)
    assert s.values["due_days"] == 365 and s.values["limits"] == {}
    assert s.source == CUR and s.problem is None and s.check_pin(st.FACTORY_PIN)


class _FailingFlash(FakeFlash):
    def rename(self, old, new):
        raise OSError(28)  # ENOSPC


def test_an_error_while_writing_propagates_and_changes_nothing():
    flash, s = _stored(FIRST)
    failing = _FailingFlash()
    failing.files = dict(flash.files)
    s = st.Settings(failing, BOARD)
    values = json.dumps(_sorted(s.values))
    raises(OSError, s.save, {"due_days": 30})
    assert json.dumps(_sorted(s.values)) == values and s.source == CUR


def test_a_later_change_to_the_callers_list_does_not_move_the_curve():
    points = [list(p) for p in FIRST["calibration"]]
    flash, s = _stored(dict(FIRST, calibration=points))
    points[4][1] = 99.0
    assert s.values["calibration"][4][1] == 16.0 and s.board["diode"]["calibration"][4][1] == 16.0


# -- the effective board -------------------------------------------------------------------


def test_a_saved_calibration_changes_the_duty_a_treatment_commands():
    design = tr.for_board(SPEC, BOARD).duty_u16
    flash, s = _stored(FIRST)
    assert s.board is not BOARD
    measured = tr.for_board(SPEC, s.board).duty_u16
    # 10 W: 9.5 W at 40000 and 16 W at 65535 -> about 41964; the design curve says about 39467.
    assert abs(measured - 41964) < 20 and abs(design - 39467) < 20, (measured, design)
    assert BOARD["diode"]["calibration"][6] == [65535, 17.0]  # the design board is untouched
    assert st.Settings(flash, BOARD).board["diode"]["calibration"] == FIRST["calibration"]


def test_lowered_limits_refuse_a_treatment_the_board_allows():
    tr.for_board(SPEC, BOARD)
    flash, s = _stored(dict(FIRST, limits={"max_power_w": 8.0, "max_energy_j": 500}))
    within_energy = {"power_w": 10.0, "dose_j_cm2": 4.0, "area_cm2": 100.0}  # 400 J
    tr.for_board(within_energy, BOARD)
    e = raises(ValueError, tr.for_board, within_energy, s.board)
    assert "is above this device's maximum of 8.000 W" in str(e), str(e)
    small = {"power_w": 5.0, "dose_j_cm2": 8.0, "area_cm2": 100.0}
    assert "limit of 500.0 J" in str(raises(ValueError, tr.for_board, small, s.board))
    assert tr.for_board({"power_w": 5.0, "dose_j_cm2": 4.0, "area_cm2": 100.0}, s.board)
    assert s.describe()["limits"] == {"max_power_w": 8.0, "max_energy_j": 500}
    s.save({"limits": {}})  # lifted again: the board's own limits
    assert tr.for_board(SPEC, s.board).target_j == 800.0


def test_the_effective_board_shares_every_section_but_the_two_it_changes():
    # One board in RAM: no copy of the thermistor's table, the inputs or the timing (a deep copy
    # of the board took kilobytes of the chip's heap, twice at boot); its own diode and limits.
    design_diode, design_limits = dict(BOARD["diode"]), dict(BOARD["limits"])
    flash, s = _stored(dict(FIRST, limits={"max_power_w": 8.0, "max_energy_j": 500}))
    for board in (s.board, st.Settings(flash, BOARD).board):
        for key in BOARD:
            assert (board[key] is not BOARD[key]) == (key in ("diode", "limits")), key
        assert board["diode"]["max_power_w"] == 8.0 and board["limits"]["max_energy_j"] == 500
    assert BOARD["diode"] == design_diode and BOARD["limits"] == design_limits


def test_a_calibration_needs_to_reach_only_a_lowered_max_power():
    aged = [[0, 0.0], [8000, 0.0], [40000, 6.0], [65535, 12.5]]
    flash, s = _stored(FIRST)
    _refused(s, flash, {"calibration": aged}, "calibration")
    s.save({"calibration": aged, "limits": {"max_power_w": 12.0}})
    assert s.board["diode"]["max_power_w"] == 12.0


# -- the PIN -------------------------------------------------------------------------------


def test_a_pin_once_set_is_the_only_one_accepted():
    flash, s = _stored(FIRST)
    s.set_pin("8642097531")
    for loaded in (s, st.Settings(flash, BOARD)):
        assert loaded.check_pin("8642097531")
        for wrong in ("8642097530", "864209753", st.FACTORY_PIN, "12a4", None, 8642097531):
            assert not loaded.check_pin(wrong), wrong


def test_each_set_pin_has_a_fresh_salt_and_the_pin_never_reaches_the_file():
    flash, s = _stored(FIRST)
    s.set_pin("8642097531")
    first = s.values["pin"]
    s.set_pin("8642097531")
    second = s.values["pin"]
    assert first["salt"] != second["salt"] and first["hash"] != second["hash"]
    for data in flash.files.values():
        assert b"8642097531" not in data
    status = json.dumps(s.describe())
    assert first["hash"] not in status and second["hash"] not in status
    assert second["salt"] not in status and "pin" not in s.describe()


def test_hash_pin_is_salted():
    salt = b"\x01" * 16
    assert st.hash_pin("1234", salt) == st.hash_pin("1234", salt)
    assert st.hash_pin("1234", salt) != st.hash_pin("1234", b"\x02" * 16)
    assert st.hash_pin("1234", salt) != st.hash_pin("1235", salt)
    assert len(st.hash_pin("1234", salt)) == 64


# -- the due date ----------------------------------------------------------------------------


def test_due_on_across_month_ends_leap_days_and_year_ends():
    for start, days, due in (("2026-01-31", 1, "2026-02-01"), ("2026-01-31", 28, "2026-02-28"),
                             ("2026-01-31", 29, "2026-03-01"), ("2026-04-30", 31, "2026-05-31"),
                             ("2027-02-28", 1, "2027-03-01"), ("2028-02-28", 1, "2028-02-29"),
                             ("2028-02-29", 1, "2028-03-01"), ("2028-02-29", 365, "2029-02-28"),
                             ("2028-02-29", 366, "2029-03-01"), ("2026-12-31", 1, "2027-01-01"),
                             ("2026-12-31", 365, "2027-12-31"), ("2026-06-15", 365, "2027-06-15"),
                             ("2100-02-28", 1, "2100-03-01"), ("2000-02-28", 1, "2000-02-29"),
                             ("2026-03-01", 3650, "2036-02-27")):
        assert st.due_on(start, days) == due, (start, days, st.due_on(start, days))
    raises(st.SettingsError, st.due_on, "2026-02-29", 1)
    raises(st.SettingsError, st.due_on, "2026-01-01", 0)


def test_the_due_date_and_the_status_reply():
    flash, s = _stored(dict(FIRST, calibrated_on="2028-02-29", due_days=365))
    assert s.due_on() == "2029-02-28"
    assert s.describe() == {"calibrated_on": "2028-02-29", "due_on": "2029-02-28",
                            "limits": {"max_power_w": 15.0, "max_energy_j": 10000},
                            "source": CUR, "problem": None, "notice": None}
    empty = st.Settings(FakeFlash(), BOARD).describe()
    assert empty["due_on"] is None and empty["calibrated_on"] is None
    assert empty["problem"].startswith("no settings stored")
