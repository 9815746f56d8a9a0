# The wall clock and the journal's time (commands.py `clock`, logbook.py, docs/serial.md): every
# record says when it was made by the wall clock (`utc_s`, null while the device does not know
# it, never guessed), which boot (`boot`) and how long after it (`up_s`). Anyone may set the clock
# between sessions; a change is on record with the time it replaced, so a jump (backwards too)
# is visible, and the records keep their order by number whatever their times say.
# Runs on CPython and on MicroPython.
from support import PIN, Rig

DEC_6_2026_S = 1796515200  # 2026-12-06T00:00:00Z


def _rig():
    return Rig().attach_memory()


def test_records_say_the_time_is_unknown_until_a_host_sets_it_never_guessing():
    rig = _rig()
    assert rig.send({"cmd": "clock"})["utc_s"] is None
    boot = rig.records("boot")[-1]
    assert boot["utc_s"] is None and boot["boot"] == 1 and boot["up_s"] == 0
    rig.run_ms(5000)
    reply = rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})
    assert (reply["ok"], reply["set"], reply["from_s"]) == (True, True, None)
    clock = rig.records("clock")[-1]
    # The record of the setting carries the new time and the one it replaced (none).
    assert (clock["from_s"], clock["utc_s"], clock["boot"]) == (None, DEC_6_2026_S, 1)
    assert clock["up_s"] == 5
    rig.run_ms(3000)
    rig.send({"cmd": "service", "pin": PIN})
    opened = rig.records("service_open")[-1]
    assert opened["utc_s"] == DEC_6_2026_S + 3 and opened["up_s"] == 8


def test_a_clock_within_two_seconds_is_left_alone_and_not_recorded():
    rig = _rig()
    rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})
    last_n = rig.app.journal.last_n
    for utc_s in (DEC_6_2026_S - 2, DEC_6_2026_S + 2):
        reply = rig.send({"cmd": "clock", "utc_s": utc_s})
        assert (reply["ok"], reply["set"], reply["utc_s"]) == (True, False, DEC_6_2026_S)
    assert rig.app.journal.last_n == last_n
    assert rig.hw.wall_clock_s() == DEC_6_2026_S


def test_a_jump_backwards_is_on_record_and_the_records_keep_their_order():
    rig = _rig()
    rig.app.commands.clock_interval_s = 0  # two settings in a row (see the next test)
    rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})
    reply = rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S - 3600})
    assert (reply["set"], reply["from_s"]) == (True, DEC_6_2026_S)
    clocks = rig.records("clock")
    assert [(c["from_s"], c["utc_s"]) for c in clocks] == [
        (None, DEC_6_2026_S), (DEC_6_2026_S, DEC_6_2026_S - 3600)]
    assert clocks[1]["n"] == clocks[0]["n"] + 1  # the number orders them, not the time


def test_a_host_alternating_times_cannot_fill_the_journal():
    # Anyone may set the clock, and each setting is a record: alternating two times as fast as
    # the port goes must not fill the journal and stop the treatments.
    rig = _rig()
    rig.app.commands.clock_interval_s = 60
    last_n = rig.app.journal.last_n
    outcomes = {"set": 0, "unchanged": 0, "refused": 0}
    for i in range(200):  # 2 s of requests, one a tick
        reply = rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S + 3600 * (i % 2)})
        if reply["ok"] is False:
            assert "clock: set" in reply["error"] and "again after 60 s" in reply["error"]
            outcomes["refused"] += 1
        else:
            outcomes["set" if reply["set"] else "unchanged"] += 1
    # The first one only: every jump after it refused, the same time left alone.
    assert outcomes == {"set": 1, "unchanged": 99, "refused": 100}
    assert rig.app.journal.last_n == last_n + 1
    rig.run_ms(61000)
    assert rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S + 7200})["set"] is True
    assert rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})["ok"] is False
    # A service session may correct it at once (the PIN is the check).
    rig.send({"cmd": "service", "pin": PIN})
    assert rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})["set"] is True
    rig.send({"cmd": "logout"})
    assert rig.app.journal.last_n <= last_n + 5
    rig.set(key_on=True)
    assert rig.send({"cmd": "arm"})["ok"] is True  # the treatments go on


def test_a_bad_clock_gets_a_clear_error_and_changes_nothing():
    rig = _rig()
    rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})
    last_n = rig.app.journal.last_n
    for value, words in ((True, "whole number"), (1.5e9, "whole number"), ("2026", "whole number"),
                         (1700000000, "1704067200..4102444799"),
                         (4102444800, "1704067200..4102444799")):
        reply = rig.send({"cmd": "clock", "utc_s": value})
        assert reply["ok"] is False and words in reply["error"], (value, reply)
    reply = rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S + 60, "zone": "CET"})
    assert reply["ok"] is False and "unknown field 'zone'" in reply["error"]
    assert rig.app.journal.last_n == last_n and rig.hw.wall_clock_s() == DEC_6_2026_S


def test_the_clock_is_not_set_during_a_session_but_can_be_read():
    rig = _rig()
    rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})
    rig.start_emitting()
    reply = rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S + 3600})
    assert reply["ok"] is False and "only between sessions" in reply["error"]
    assert rig.send({"cmd": "clock"})["utc_s"] == rig.hw.wall_clock_s() < DEC_6_2026_S + 60
    arm = rig.records("arm")[-1]
    assert arm["utc_s"] is not None and arm["boot"] == 1


def test_every_record_made_after_a_host_connected_has_the_time_and_the_device():
    # The test of done: after a tool has set the clock, every new record (the loop's,
    # the service's, a release) says when and on which device it was made.
    rig = Rig()
    rig.app.device_id = "240ac4000001"
    rig.attach_memory()
    rig.send({"cmd": "clock", "utc_s": DEC_6_2026_S})
    first = rig.app.journal.last_n
    rig.start_emitting()
    rig.run_ms(2000)
    rig.hw.press_footswitch(False)
    rig.run_ms(100)
    rig.send({"cmd": "disarm"})
    rig.set(estop_pressed=True)
    rig.set(estop_pressed=False)
    rig.send({"cmd": "service", "pin": "0000"})  # wrong
    rig.send({"cmd": "service", "pin": PIN})
    rig.send({"cmd": "limits", "max_power_w": 12})
    rig.send({"cmd": "journal_clear", "through": rig.app.journal.last_n})
    records = rig.records()
    new = [r for r in records if r["n"] >= first]
    kinds = {r["ev"] for r in new}
    assert {"clock", "arm", "checkpoint", "session", "fault", "pin_wrong", "service_open",
            "service", "release"} <= kinds, kinds
    for record in new:
        assert record["device"] == "240ac4000001", record
        assert record["utc_s"] is not None and record["utc_s"] >= DEC_6_2026_S, record
        assert record["boot"] == 1 and record["up_s"] >= 0, record
