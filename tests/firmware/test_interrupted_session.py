# A session a reset or a power cut interrupts (session.py, logbook.py, docs/memory.md): the next
# boot closes it with what is known of its dose, as a bound that holds the truth. Through a reset
# RTC memory keeps the dose to the last tick; a power cut loses it, and the journal's checkpoints
# (every journal.checkpoint_s of emission, and at every pause) bound it instead. Boot numbers
# never repeat, whatever happens to the journal. Runs on CPython and on MicroPython.
import sys

from fakeflash import FakeFlash, PowerCut
from support import Rig

CHECKPOINT_S = 30  # journal.checkpoint_s of the sim board (the default)
# How long a hung loop can keep the light after the outputs the count reached: the rest of that
# tick (under the watchdog's 500 ms, or it bites then), the watchdog's 500 ms, and a tick.
HANG_MS = 2 * 500 + 10
LATE_MS = 500  # how late a checkpoint's write or a slow tick can make the light's end


def _rig(**kwargs):
    return Rig(**kwargs).attach_memory()


def _reboot(rig, power_cut=False, reset="RESET"):
    """The chip restarts on the same flash: RTC memory kept unless the power was cut."""
    rig.hw.reboot(power_cut)
    again = Rig(hw=rig.hw, start_ms=rig.now_ms, watchdog_reset=reset == "WATCHDOG_RESET")
    return again.attach_memory(rig.flash, reset=reset)


def _close(a, b):
    return abs(a - b) <= 0.0015  # the journal writes joules to the millijoule


def test_a_watchdog_reset_closes_the_session_with_the_dose_rtc_memory_kept():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms(6000)
    counted_mj, emitting_ms = rig.app.dosimeter.energy_mj, rig.app.dosimeter.emitting_ms
    assert rig.hw.rtc_writes > 600  # written every tick of the session
    # The loop hangs here, the light on, until the watchdog resets the chip.
    again = _reboot(rig, reset="WATCHDOG_RESET")
    arm, end = again.records("arm")[-1], again.records("session")[-1]
    assert (end["end"], end["dose_from"], end["arm_n"]) == ("WATCHDOG_RESET", "rtc_memory",
                                                            arm["n"])
    assert end["delivered_j"] == counted_mj / 1000 and end["emitting_s"] == emitting_ms / 1000
    # What the hang could add: the full light until the watchdog's reset.
    assert _close(end["delivered_max_j"], counted_mj / 1000 + arm["peak_w"] * HANG_MS / 1000)
    assert "between %.3f J and %.3f J delivered" % (end["delivered_j"], end["delivered_max_j"]) \
        in end["note"]
    assert (end["protocol"], end["target_j"], end["power_w"]) == ("custom", 800.0, 10.0)
    # The arm's peak is the calibrated light rounded up to the milliwatt: bounds never short.
    peak_uw = rig.app.treatment.peak_uw_steps[len(rig.app.treatment.peak_uw_steps) - 1]
    assert 0 <= arm["peak_w"] * 1000000 - peak_uw < 1000
    assert end["start_utc_s"] == arm["utc_s"] and end["device"] == again.app.device_id
    # The operator sees it: the session line with its bound, and status until the next arm.
    assert again.send({"cmd": "status"})["delivered_j"] == end["delivered_j"]
    line = again.events("session")[-1]
    assert (line["delivered_j"], line["delivered_max_j"]) == (end["delivered_j"],
                                                              end["delivered_max_j"])
    # Closed once: another reset finds nothing to close.
    sessions = len(again.records("session"))
    third = _reboot(again)
    assert len(third.records("session")) == sessions


def test_a_reset_while_paused_counts_the_dose_to_the_tick_and_bounds_what_could_follow():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms(3000)
    rig.hw.press_footswitch(False)
    rig.run_ms(200)
    assert rig.state == "PAUSED"
    counted_mj = rig.app.dosimeter.energy_mj
    again = _reboot(rig)
    arm, end = again.records("arm")[-1], again.records("session")[-1]
    assert end["dose_from"] == "rtc_memory" and end["pauses"] == 1
    assert end["delivered_j"] == counted_mj / 1000
    # Paused, the light was off when RTC memory was written; but the next tick could have
    # taken a press and turned it on before it hung: the bound keeps that hang.
    assert _close(end["delivered_max_j"], counted_mj / 1000 + arm["peak_w"] * HANG_MS / 1000)


def test_a_power_cut_closes_the_session_between_its_last_checkpoint_and_what_could_follow():
    # 45 s and 65 s of 10 W towards 800 J: the bound is checkpoint_s more emission, and at 65 s
    # that would pass the target, which bounds it instead.
    for emitting_s, checkpointed_s, capped in ((45, [30], False), (65, [30, 60], True)):
        rig = _rig()
        rig.start_emitting()
        rig.run_ms(emitting_s * 1000)
        true_j = rig.app.dosimeter.energy_mj / 1000
        checkpoints = rig.records("checkpoint")
        assert [round(c["emitting_s"]) for c in checkpoints] == checkpointed_s
        again = _reboot(rig, power_cut=True)
        arm, end = again.records("arm")[-1], again.records("session")[-1]
        assert (end["end"], end["dose_from"]) == ("RESET", "checkpoint")
        assert end["delivered_j"] == checkpoints[-1]["delivered_j"] <= true_j <= \
            end["delivered_max_j"]
        # At most checkpoint_s more emission and the next write, and never past the target by
        # more than a late tick: the loop ran to the cut, and its dose stop held.
        reach_j = end["delivered_j"] + arm["peak_w"] * (CHECKPOINT_S + LATE_MS / 1000)
        target_j = arm["target_j"] + arm["peak_w"] * LATE_MS / 1000
        assert _close(end["delivered_max_j"], target_j if capped else reach_j), emitting_s
        assert (reach_j > target_j) == capped
        assert again.send({"cmd": "status"})["delivered_j"] == end["delivered_j"]


def test_every_pause_is_a_checkpoint_and_a_cut_while_paused_loses_no_dose():
    rig = _rig()
    rig.start_emitting()
    for _ in range(4):  # a pedal lifted every 2 s: each pause checkpoints what came before
        rig.run_ms(2000)
        rig.hw.press_footswitch(False)
        rig.run_ms(100)
        rig.press_footswitch()
    rig.hw.press_footswitch(False)
    rig.run_ms(100)
    checkpoints = rig.records("checkpoint")
    assert [c["pauses"] for c in checkpoints] == [1, 2, 3, 4, 5]
    true_j = rig.app.dosimeter.energy_mj / 1000
    assert checkpoints[-1]["delivered_j"] == true_j
    end = _reboot(rig, power_cut=True).records("session")[-1]
    # After the last checkpoint the session could have resumed: the bound says so.
    assert end["delivered_j"] == true_j and end["pauses"] == 5
    assert end["delivered_max_j"] > true_j


def test_a_torn_rtc_memory_write_is_not_believed_and_the_checkpoint_stands():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms((CHECKPOINT_S + 2) * 1000)
    kept = bytearray(rig.hw.rtc_kept)
    kept[20] ^= 0x01  # one bit of the dose, as if the reset hit in the middle of the write
    rig.hw.rtc_kept = bytes(kept)
    end = _reboot(rig).records("session")[-1]
    assert end["dose_from"] == "checkpoint"
    assert end["delivered_j"] == rig.records("checkpoint")[-1]["delivered_j"]


def test_no_checkpoint_is_written_when_the_dose_could_end_during_the_write():
    # 304 J at 10 W: at 30 s of emission 4 J are left, less than the light of the 0.5 s a flash
    # write may take (the watchdog's limit): the checkpoint would make the stop late.
    rig = _rig(dose_j_cm2=3.04)
    rig.start_emitting()
    rig.run_ms((CHECKPOINT_S + 1) * 1000)
    assert rig.state == "COMPLETE" and rig.records("checkpoint") == []
    end = rig.records("session")[-1]
    assert end["dose_from"] == "dosimeter" and end["delivered_j"] == end["delivered_max_j"]


def test_a_session_record_holds_the_whole_treatment_and_who_delivered_it():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms(1000)
    rig.send({"cmd": "disarm"})
    end = rig.records("session")[-1]
    for key in ("start_utc_s", "protocol", "skin_type", "target_j", "power_w", "peak_w",
                "dose_j_cm2", "area_cm2", "mode", "pulse_hz", "duty_pct", "delivered_j",
                "delivered_max_j", "measured_j", "emitting_s", "pauses", "derated_s", "end",
                "fault", "device", "version", "image", "calibrated_on", "dose_from", "utc_s",
                "boot", "up_s"):
        assert key in end, key
    assert (end["dose_j_cm2"], end["area_cm2"], end["mode"]) == (8.0, 100.0, "cw")
    assert end["calibrated_on"] == "2026-11-01" and end["end"] == "DISARMED"
    # The sim board has a power monitor: the light it measured, near what was counted.
    assert abs(end["measured_j"] - end["delivered_j"]) < 0.05 * end["delivered_j"]


def test_boot_numbers_never_repeat_whatever_happens_to_the_journal():
    rig = _rig()
    for _ in range(2):
        rig = _reboot(rig)
    numbers = [r["boot"] for r in rig.records("boot")]
    assert numbers == [1, 2, 3]
    # The last boot's record altered: it no longer counts, but the boot count does.
    log = rig.flash.files["journal.log"]
    at = log.rindex(b'"ev":"boot"')
    rig.flash.files["journal.log"] = log[:at] + b'"ev":"BOOT"' + log[at + 11:]
    rig = _reboot(rig)
    assert rig.records("boot")[-1]["boot"] == 4
    # The journal gone altogether (a technician's mpremote rm): still no repeat.
    for path in ("journal.log", "journal.old"):
        rig.flash.files.pop(path, None)
    rig = _reboot(rig)
    assert [r["boot"] for r in rig.records("boot")] == [5]
    # And a damaged boot count: the journal's numbers stand.
    rig.flash.files["boot_count"] = b"\xff\x00"
    rig = _reboot(rig)
    assert rig.records("boot")[-1]["boot"] == 6


def _cut_checkpoint(keep_unclosed, cut, settings):
    """A session paused (which writes a checkpoint) with the power cut after `cut` steps of the
    write, then the next boot. Returns how many steps the checkpoint took if it was not cut."""
    flash = FakeFlash(keep_unclosed)
    flash.files = dict(settings)  # stored once: hashing the PIN is slow on MicroPython
    rig = Rig().attach_memory(flash)
    rig.start_emitting()
    rig.run_ms(200)
    before = rig.records()
    start = flash.steps
    flash.cut_after(cut)
    steps = None
    try:
        rig.hw.press_footswitch(False)  # the pause writes a checkpoint
        rig.run_ms(20)
        flash.cut_after(None)
        steps = flash.steps - start  # every byte of the checkpoint's line
    except PowerCut:
        pass
    context = (keep_unclosed, cut)
    again = _reboot(rig, power_cut=True)
    assert again.app.journal.problems == [], context
    after = again.records()
    assert after[:len(before)] == before, context  # nothing committed is lost
    written = after[len(before)]["ev"] == "checkpoint"
    end = after[-2]
    assert (end["ev"], after[-1]["ev"]) == ("session", "boot"), context
    assert end["dose_from"] == ("checkpoint" if written else "none"), context
    true_j = rig.app.dosimeter.energy_mj / 1000
    assert end["delivered_j"] <= true_j <= end["delivered_max_j"], context
    if written:
        assert end["delivered_j"] == true_j, context
    return steps


def test_a_power_cut_at_every_step_of_a_checkpoint_loses_no_committed_record():
    settings = {path: data for path, data in Rig().attach_memory().flash.files.items()
                if path.startswith("settings")}
    steps = _cut_checkpoint(True, 1000000, settings)
    assert steps > 100  # every byte of its line, and its newline, is a step
    # A FAT-like flash: every byte written before the cut stays. Every byte under CPython; on
    # MicroPython (three times slower here) every 8th and both ends, the same code at each.
    every = 8 if sys.implementation.name == "micropython" else 1
    for cut in sorted(set(list(range(0, steps + 1, every)) + [1, steps - 1, steps])):
        _cut_checkpoint(True, cut, settings)
    for cut in (0, 1, steps // 2, steps - 1, steps):  # littlefs: nothing of an unclosed write
        _cut_checkpoint(False, cut, settings)


def _refuse_arms(journal):
    """The journal fails to write arm records (the flash full at those moments)."""
    append = journal.append

    def refuse_the_arm(record):
        if record["ev"] == "arm":
            raise OSError(28)  # ENOSPC
        return append(record)

    journal.append = refuse_the_arm


def test_a_session_whose_arm_the_journal_missed_is_closed_once_whatever_the_reset_hits():
    rig = _rig()
    _refuse_arms(rig.app.journal)
    rig.start_emitting()  # arming goes on: a running session is the state machine's
    rig.run_ms(2000)
    rig.hw.press_footswitch(False)
    rig.run_ms(100)
    before_end = rig.hw.rtc_kept  # the figures as kept in the tick before the session ends
    rig.send({"cmd": "disarm"})
    sessions = rig.records("session")
    assert (sessions[-1]["end"], sessions[-1]["arm_n"]) == ("DISARMED", None)
    # A reset between the session's record and RTC memory's update: the figures still there.
    rig.hw.rtc_kept = before_end
    again = _reboot(rig)
    assert again.records("session") == sessions  # not closed twice
    # Without the record (a reset before it), the kept figures close it, arm or none.
    rig = _rig()
    _refuse_arms(rig.app.journal)
    rig.start_emitting()
    rig.run_ms(2000)
    counted_mj = rig.app.dosimeter.energy_mj
    end = _reboot(rig, reset="WATCHDOG_RESET").records("session")[-1]
    assert (end["arm_n"], end["dose_from"]) == (None, "rtc_memory")
    assert end["delivered_j"] == counted_mj / 1000


def test_a_tick_that_fails_as_it_arms_ends_a_session_that_names_no_earlier_arm():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms(500)
    rig.send({"cmd": "disarm"})
    first_arm = rig.records("arm")[-1]["n"]
    actuate = rig.hw.actuate
    failures = []

    def fail_once(out):
        if out.emission_led and not failures:  # the tick that entered READY
            failures.append(True)
            raise OSError("simulated driver fault")
        return actuate(out)

    rig.hw.actuate = fail_once
    rig.arm()
    rig.run_ms(100)
    assert failures and rig.state == "FAULT"
    end = rig.records("session")[-1]
    assert end["end"] == "FAULT" and end["arm_n"] != first_arm and end["arm_n"] is None
    assert end["pauses"] == 0 and end["start_utc_s"] is None


def test_a_checkpoint_the_journal_refused_is_tried_again_a_second_later():
    rig = _rig()
    journal = rig.app.journal
    append = journal.append
    refused = []

    def refuse_checkpoints_for_a_while(record):
        if record["ev"] == "checkpoint" and len(refused) < 3:
            refused.append(rig.app.dosimeter.emitting_ms)
            raise OSError(5)  # EIO
        return append(record)

    journal.append = refuse_checkpoints_for_a_while
    rig.start_emitting()
    rig.run_ms((CHECKPOINT_S + 4) * 1000)
    # Refused at 30 s of emission, then tried each second: taken at 33 s, not 60 s.
    assert [round(ms / 1000) for ms in refused] == [CHECKPOINT_S, CHECKPOINT_S + 1,
                                                    CHECKPOINT_S + 2]
    assert [round(c["emitting_s"]) for c in rig.records("checkpoint")] == [CHECKPOINT_S + 3]


def test_after_a_watchdog_reset_that_rtc_memory_cannot_vouch_for_the_bound_keeps_the_hang():
    rig = _rig()
    rig.start_emitting()
    rig.run_ms((CHECKPOINT_S + 2) * 1000)
    kept = bytearray(rig.hw.rtc_kept)
    kept[20] ^= 0x01  # torn
    rig.hw.rtc_kept = bytes(kept)
    again = _reboot(rig, reset="WATCHDOG_RESET")
    arm, end = again.records("arm")[-1], again.records("session")[-1]
    assert (end["end"], end["dose_from"]) == ("WATCHDOG_RESET", "checkpoint")
    # The loop hung before the reset: the checkpoint's bound grows by the hang.
    late_s = (LATE_MS + HANG_MS) / 1000
    assert _close(end["delivered_max_j"],
                  end["delivered_j"] + arm["peak_w"] * (CHECKPOINT_S + late_s))


def test_a_boot_count_past_the_chips_small_integers_is_damage_not_a_number():
    rig = _rig()
    rig.flash.files["boot_count"] = b"%d" % (1 << 40)
    rig = _reboot(rig)
    assert rig.records("boot")[-1]["boot"] == 2  # the journal's numbers stand
    assert rig.flash.files["boot_count"] == b"2"
