# The treatment journal (firmware/lib/journal.py): its chain of hashes, a power cut at every step
# of an append, a repair, a rotation and a release, and tampering found where it happened.
import hashlib
import json
from binascii import hexlify

from fakeflash import FakeFlash, PowerCut
from journal import GENESIS, Journal, parse, verify
from support import raises

LOG, OLD = "journal.log", "journal.old"


class SmallJournal(Journal):
    file_bytes = 500  # four or five records a file


def _record(i):
    return {"ev": "session", "dose_j": 12.5 + i, "site": "knee"}


def _journal(flash, count, cls=Journal):
    journal = cls(flash)
    for _ in range(count):
        journal.append(_record(journal.last_n))
    return journal


def _file_lines(data):
    lines = data.decode().split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _lines(flash):
    """Every line on the flash, the old file's first."""
    return _file_lines(flash.files.get(OLD, b"")) + _file_lines(flash.files.get(LOG, b""))


def _ns(lines):
    return [parse(line)[2]["n"] for line in lines]


def _steps(flash, fn, *args):
    before = flash.steps
    fn(*args)
    return flash.steps - before


def _cut(flash, steps, fn, *args):
    """Run fn with the power cut after `steps` steps; True if it took more and was cut."""
    flash.cut_after(steps)
    try:
        fn(*args)
        was_cut = False
    except PowerCut:
        was_cut = True
    flash.cut_after(None)  # the power is back
    return was_cut


def _check_reboot(flash, last_n, repaired, context, cls=Journal, check=None):
    """A boot after a cut: every record through last_n intact and in order, nothing wrong, a
    repair only when a fragment was left (and `check` on the journal as it boots); then the
    journal goes on and the chain holds."""
    seen = []
    journal = cls(flash, on_record=seen.append)
    if check is not None:
        check(journal)
    assert journal.problems == [], (context, journal.problems)
    assert journal.last_n == last_n, (context, journal.last_n)
    assert (journal.repaired is not None) == repaired, (context, journal.repaired)
    first_n = journal.first_n
    assert [r["n"] for r in seen] == list(range(first_n, last_n + 1)), context
    for r in seen:
        if r["ev"] == "session":
            assert r["dose_j"] == 12.5 + r["n"] - 1 and r["site"] == "knee", (context, r)
    assert journal.append({"ev": "boot"}) == last_n + 1, context
    lines = _lines(flash)
    head = (journal.last_n, journal.last_hash)
    records, problems = verify(lines, GENESIS if _ns(lines)[0] == 1 else None, head)
    assert problems == [], (context, problems)
    assert [r["n"] for r in records] == list(range(_ns(lines)[0], last_n + 2)), context
    return journal


def test_a_power_cut_at_every_step_of_an_append_loses_nothing_committed():
    probe = FakeFlash()
    journal = _journal(probe, 3)
    steps = _steps(probe, journal.append, _record(3))
    assert steps == len(_file_lines(probe.files[LOG])[-1]) + 1  # every byte of the line, "\n" too
    for keep_unclosed in (True, False):
        for cut in range(steps + 1):
            flash = FakeFlash(keep_unclosed)
            journal = _journal(flash, 3)
            assert _cut(flash, cut, journal.append, _record(3)) == (cut < steps)
            # A FAT-like flash keeps a line cut before its "\n": a whole record, kept.
            whole = cut == steps or (keep_unclosed and cut == steps - 1)
            fragment = keep_unclosed and 0 < cut < steps
            _check_reboot(flash, 4 if whole else 3, fragment, (keep_unclosed, cut))


def _with_end(keep_unclosed, end_bytes):
    """Three records, then the first end_bytes of the line of a fourth."""
    probe = FakeFlash()
    _journal(probe, 4)
    fourth = probe.files[LOG].split(b"\n")[3] + b"\n"
    flash = FakeFlash(keep_unclosed)
    _journal(flash, 3)
    flash.files[LOG] += fourth[:end_bytes]
    return flash, len(fourth)


def test_a_power_cut_during_the_repair_of_a_cut_record_loses_nothing():
    for keep_unclosed in (True, False):
        flash, line_bytes = _with_end(keep_unclosed, 40)
        kept_bytes = len(flash.files[LOG]) - 40
        steps = _steps(flash, Journal, flash)
        assert steps == kept_bytes + 1  # the copy of what is kept, and the rename
        for cut in range(steps + 1):
            flash, _ = _with_end(keep_unclosed, 40)
            assert _cut(flash, cut, Journal, flash) == (cut < steps)
            _check_reboot(flash, 3, cut < steps, (keep_unclosed, cut))
        # The record whole but for its newline: kept, the newline completed (one step).
        for cut in range(2):
            flash, _ = _with_end(keep_unclosed, line_bytes - 1)
            assert _cut(flash, cut, Journal, flash) == (cut < 1)
            _check_reboot(flash, 4, cut < 1, (keep_unclosed, cut))


def test_a_scan_reports_what_it_repaired():
    flash, _ = _with_end(True, 37)
    journal = Journal(flash)
    assert journal.repaired == ("dropped a partial record of 37 bytes at the end of journal.log "
                                "(a write cut short)")
    assert journal.last_n == 3 and journal.problems == [] and LOG + ".tmp" not in flash.files
    flash, line_bytes = _with_end(True, 0)
    assert Journal(flash).repaired is None
    flash, _ = _with_end(True, line_bytes - 1)
    assert "completed the newline of record n=4" in Journal(flash).repaired
    assert flash.files[LOG].endswith(b"\n")


def _full_rotation(keep_unclosed=True):
    """A journal whose next append rotates the current file."""
    flash = FakeFlash(keep_unclosed)
    journal = SmallJournal(flash)
    while flash.size(LOG) is None or flash.size(LOG) < journal.file_bytes:
        journal.append(_record(journal.last_n))
    return flash, journal


def test_a_power_cut_at_every_step_of_a_rotation_loses_nothing():
    probe, journal = _full_rotation()
    count = journal.last_n
    steps = _steps(probe, journal.append, _record(count))
    assert _ns(_file_lines(probe.files[OLD])) == list(range(1, count + 1))
    assert steps == 1 + len(probe.files[LOG])  # the rename, then the new file's first line
    for keep_unclosed in (True, False):
        for cut in range(steps + 1):
            flash, journal = _full_rotation(keep_unclosed)
            assert _cut(flash, cut, journal.append, _record(count)) == (cut < steps)
            whole = cut == steps or (keep_unclosed and cut == steps - 1)
            fragment = keep_unclosed and 1 < cut < steps  # step 0 is the rename
            _check_reboot(flash, count + (1 if whole else 0), fragment, (keep_unclosed, cut),
                          SmallJournal)


def test_rotation_never_drops_an_unreleased_record_and_read_spans_both_files():
    flash, journal = _full_rotation()
    old_max = journal.last_n
    journal.append(_record(old_max))
    assert OLD in flash.files and not journal.full and journal.first_n == 1
    while flash.size(LOG) < journal.file_bytes:
        journal.append(_record(journal.last_n))
    assert journal.full  # journal.old holds records the host has not saved
    old, size = flash.files[OLD], flash.size(LOG)
    n = journal.append(_record(journal.last_n))  # lands in the oversize file
    assert flash.files[OLD] == old and flash.size(LOG) > size and journal.full
    assert _ns(journal.read(1, 1000)) == list(range(1, n + 1))
    assert _ns(journal.read(old_max - 1, 3)) == [old_max - 1, old_max, old_max + 1]
    assert _ns(journal.read(n, 5)) == [n] and journal.read(n + 1, 5) == []
    assert verify(journal.read(1, 1000), GENESIS, (n, journal.last_hash))[1] == []
    # Released short of the old file's end: nothing may go yet, after a reboot too.
    journal.release(old_max - 1)
    assert flash.files[OLD] == old and journal.full
    again = SmallJournal(flash)
    assert again.released_n == old_max - 1 and again.full and again.problems == []
    assert again.last_n == journal.last_n and again.last_hash == journal.last_hash
    # Released through the old file's end: it goes at once.
    n = journal.release(old_max)
    assert OLD not in flash.files and not journal.full and journal.released_n == old_max
    assert journal.first_n == old_max + 1
    assert _ns(journal.read(1, 1000)) == list(range(old_max + 1, n + 1))
    # The next append rotates; nothing released is left to hold the one after.
    n = journal.append({"ev": "boot"})
    assert _ns(_file_lines(flash.files[LOG])) == [n] and journal.first_n == old_max + 1
    assert _ns(journal.read(1, 1000)) == list(range(old_max + 1, n + 1))
    assert verify(_lines(flash), None, (n, journal.last_hash))[1] == []


def _full(keep_unclosed=True):
    """A journal that cannot rotate: journal.old holds records not released."""
    flash, journal = _full_rotation(keep_unclosed)
    while not journal.full:
        journal.append(_record(journal.last_n))
    return flash, journal


def test_a_power_cut_at_every_step_of_a_release_keeps_it_on_record_or_not_at_all():
    probe, journal = _full()
    through = _ns(_file_lines(probe.files[OLD]))[-1]
    steps = _steps(probe, journal.release, through)
    assert OLD not in probe.files
    assert steps == len(_file_lines(probe.files[LOG])[-1]) + 2  # its line, "\n", the remove
    for keep_unclosed in (True, False):
        for cut in range(steps + 1):
            flash, journal = _full(keep_unclosed)
            last_n = journal.last_n
            assert _cut(flash, cut, journal.release, through) == (cut < steps)
            released = cut >= steps - 1 or (keep_unclosed and cut == steps - 2)
            fragment = keep_unclosed and 0 < cut < steps - 1  # the last one is the remove
            context = (keep_unclosed, cut)
            if released:
                last_n += 1

            def check(booted, released=released, context=context):
                assert booted.released_n == (through if released else 0), context
                assert booted.full == (not released), context

            # The boot record rotates the current file over the old one once it is released.
            journal = _check_reboot(flash, last_n, fragment, context, SmallJournal, check)
            first = through + 1 if released else 1
            assert _ns(journal.read(1, 1000)) == list(range(first, journal.last_n + 1)), context


def _eight():
    flash = FakeFlash()
    journal = _journal(flash, 8)
    return flash, journal, _lines(flash)


def _changed(line, pos, c):
    return line[:pos] + c + line[pos + 1:]


def test_a_changed_byte_is_found_at_its_line():
    flash, journal, lines = _eight()
    head = (journal.last_n, journal.last_hash)
    line = lines[3]
    for pos in range(len(line)):
        c = "1" if line[pos] != "1" else "2"
        changed = lines[:3] + [_changed(line, pos, c)] + lines[4:]
        problems = verify(changed, GENESIS, head)[1]
        assert problems and problems[0][0] == 3, (pos, problems)
    # A changed hash digit or a changed value: that line and nothing else.
    altered = [(3, "record n=4 fails its hash (altered)")]
    for pos, c in ((10, "f" if line[10] != "f" else "e"), (line.index("knee"), "K")):
        changed = lines[:3] + [_changed(line, pos, c)] + lines[4:]
        records, problems = verify(changed, GENESIS, head)
        assert problems == altered, (pos, problems)
        assert [r["n"] for r in records] == list(range(1, 9))
        # What follows still verifies against its own predecessor, as it was written.
        assert verify(changed[4:], parse(lines[3])[0], head)[1] == []
        assert verify(changed[4:])[1] == []
    # Record 1 chains from GENESIS even when nothing is given to start from.
    changed = [_changed(lines[0], lines[0].index("knee"), "K")] + lines[1:]
    assert verify(changed)[1] == [(0, "record n=1 fails its hash (altered)")]
    # On the device: reported, kept as evidence, and the journal goes on.
    changed = lines[:3] + [_changed(line, line.index("knee"), "K")] + lines[4:]
    tampered = flash.files[LOG] = ("\n".join(changed) + "\n").encode()
    seen = []
    again = Journal(flash, on_record=seen.append)
    assert again.problems == ["journal.log line 4: record n=4 fails its hash (altered)"]
    assert again.repaired is None and flash.files[LOG] == tampered
    assert again.last_n == 8 and [r["n"] for r in seen] == [1, 2, 3, 5, 6, 7, 8]
    again.append({"ev": "boot"})
    assert verify(_lines(flash), GENESIS, (9, again.last_hash))[1] == altered


def test_a_byte_that_is_not_text_is_reported_and_kept():
    flash, journal, lines = _eight()
    data = bytearray(flash.files[LOG])
    data[len(("\n".join(lines[:3]) + "\n").encode()) + 70] = 0xFF  # in record 4's body
    flash.files[LOG] = bytes(data)
    again = Journal(flash)
    assert again.problems == ["journal.log line 4: malformed line: not UTF-8 text"]
    assert again.last_n == 8 and again.last_hash == journal.last_hash
    assert flash.files[LOG] == bytes(data)
    assert _ns(again.read(1, 100)) == [1, 2, 3, 5, 6, 7, 8]


def test_removed_and_cut_off_records_are_reported():
    flash, journal, lines = _eight()
    head = (journal.last_n, journal.last_hash)
    assert verify(lines, GENESIS, head) == (verify(lines)[0], [])
    missing = [(3, "records n=4..4 missing")]
    assert verify(lines[:3] + lines[4:], GENESIS, head)[1] == missing
    assert verify(lines[:2] + lines[5:], GENESIS, head)[1] == [(2, "records n=3..5 missing")]
    flash.files[LOG] = ("\n".join(lines[:3] + lines[4:]) + "\n").encode()
    again = Journal(flash)
    assert again.problems == ["journal.log line 4: records n=4..4 missing"]
    assert again.last_n == 8
    assert verify(lines[:5], GENESIS, head)[1] == [
        (5, "journal ends at n=5 but the device's head is n=8 (records cut off the end)")]
    assert verify(lines[:5], GENESIS)[1] == []  # without the head, a cut at a line is not seen
    assert verify(lines, GENESIS, (8, "f" * 64))[1] == [
        (8, "record n=8 is not the device's head (altered)")]
    # A record repeated or moved: reported where it is; the chain goes on from its predecessor.
    assert verify(lines[:5] + [lines[2]] + lines[5:], GENESIS, head)[1] == [
        (5, "record n=3 out of order after n=5 (repeated or moved)")]
    # The first line must chain from a given hash: record 1 from GENESIS.
    assert verify(lines[1:], GENESIS)[1] == [(0, "record n=2 fails its hash (altered)")]
    assert verify(lines[1:], parse(lines[0])[0])[1] == []


def test_parse_and_verify_reject_malformed_lines():
    line = _eight()[2][0]
    hash_hex, body = line[:64], line[65:]
    bad = ["", "abc", hash_hex + body, hash_hex.upper() + " " + body, hash_hex + " {",
           hash_hex + " [1]", hash_hex + ' {"ev":"x"}', hash_hex + ' {"n":0,"ev":"x"}',
           hash_hex + ' {"n":"1","ev":"x"}', hash_hex + ' {"n":true,"ev":"x"}',
           hash_hex + ' {"n":1}', line[:80]]
    for text in bad:
        message = str(raises(ValueError, parse, text))
        assert len(message) > 10, (text, message)
        records, problems = verify([line, text])
        assert records == [parse(line)[2]] and len(problems) == 1, (text, problems)
        assert problems[0][0] == 1 and problems[0][1].startswith("malformed line: "), problems
    assert "hex" in str(raises(ValueError, parse, hash_hex.upper() + " " + body))
    assert "JSON" in str(raises(ValueError, parse, line[:80]))
    assert parse(line + "\n") == parse(line)


def test_release_refuses_out_of_range_and_writes_nothing():
    flash, journal, _ = _eight()
    journal.release(3)
    files, steps = dict(flash.files), flash.steps
    for through in (2, 10, -1, "5", None, True):
        message = str(raises(ValueError, journal.release, through))
        assert "n=3 (released already) to n=9" in message, message
    assert flash.files == files and flash.steps == steps and journal.released_n == 3
    assert journal.release(9) == 10 and journal.released_n == 9


def test_a_record_that_cannot_be_written_is_refused_and_writes_nothing():
    flash, journal, _ = _eight()
    files = dict(flash.files)
    for record in ({"ev": "x", "v": set([1])}, {"ev": "x", "v": b"ab"}, {"ev": "x", 1: 2},
                   {"ev": "x", "v": float("nan")}, {"ev": "x", "v": [object()]},
                   {"ev": "x", "n": 3}, {"v": 1}, ["ev", "x"]):
        assert str(raises(ValueError, journal.append, record)), record
    assert flash.files == files and journal.last_n == 8
    assert journal.append({"ev": "x", "v": [1, "é\n", None, True, {"k": 2.5}]}) == 9
    assert verify(_lines(flash), GENESIS)[1] == []
    assert parse(journal.read(9, 1)[0])[2]["v"] == [1, "é\n", None, True, {"k": 2.5}]


def test_the_hash_is_sha256_of_the_previous_hash_and_the_body():
    flash = FakeFlash()
    journal = Journal(flash)
    assert (journal.last_n, journal.last_hash, journal.first_n) == (0, GENESIS, None)
    journal.append({"ev": "boot", "fw": "1.0"})
    journal.append({"ev": "session", "dose_j": 8})
    first, second = flash.files[LOG].split(b"\n")[:2]
    body = first[65:]
    assert json.loads(body) == {"ev": "boot", "fw": "1.0", "n": 1}
    assert b" " not in body  # compact
    expected = hexlify(hashlib.sha256(b"0" * 64 + body).digest())
    assert first[:64] == expected and first[64:65] == b" "
    assert second[:64] == hexlify(hashlib.sha256(expected + second[65:]).digest())
    assert journal.last_hash == second[:64].decode() and journal.first_n == 1


class _WatchedFlash(FakeFlash):
    """Records every write() call; `fail_next` makes the next one store half its data and then
    fail, as a full or worn flash would."""

    def __init__(self):
        FakeFlash.__init__(self, keep_unclosed=False)  # data lands only when a file is closed
        self.writes, self.fail_next = [], False

    def open(self, path, mode):
        f = FakeFlash.open(self, path, mode)
        if "r" in mode:
            return f
        write = f.write

        def watched(data):
            self.writes.append((path, mode, len(data)))
            if self.fail_next:
                self.fail_next = False
                write(data[:len(data) // 2])
                raise OSError(28)  # ENOSPC
            return write(data)

        f.write = watched
        return f


def test_an_append_is_one_write_to_a_file_then_closed():
    flash = _WatchedFlash()
    _journal(flash, 2)
    first, second = _file_lines(flash.files[LOG])
    assert flash.writes == [(LOG, "ab", len(first) + 1), (LOG, "ab", len(second) + 1)]
    assert _ns(_file_lines(flash.files[LOG])) == [1, 2]  # committed: the file was closed


def test_a_write_that_fails_is_dropped_before_the_next_append():
    flash = _WatchedFlash()
    journal = _journal(flash, 2)
    flash.fail_next = True
    assert raises(OSError, journal.append, _record(2)).args[0] == 28
    assert journal.last_n == 2 and not flash.files[LOG].endswith(b"\n")  # half a line, closed
    assert journal.append(_record(2)) == 3
    assert "dropped a partial record" in journal.repaired
    assert verify(_lines(flash), GENESIS, (3, journal.last_hash))[1] == []


def test_an_empty_flash_is_an_empty_journal():
    journal = Journal(FakeFlash())
    assert (journal.last_n, journal.released_n, journal.problems, journal.repaired) == (
        0, 0, [], None)
    assert journal.read(1, 10) == [] and not journal.full
    assert str(raises(ValueError, journal.release, 1))
