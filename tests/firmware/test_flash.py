# The atomic file write under a power cut at every step, on both kinds of simulated flash.
from fakeflash import FakeFlash, PowerCut
from flash import read_bytes, write_atomic

OLD = b'{"v": "old"}\n'
NEW = b'{"v": "the new contents"}\n'


def _steps_of_a_write():
    flash = FakeFlash()
    flash.files["f"] = OLD
    write_atomic(flash, "f", NEW)
    assert flash.files["f"] == NEW and "f.tmp" not in flash.files
    return flash.steps


def test_a_write_leaves_the_old_file_or_the_new_one_at_every_cut():
    steps = _steps_of_a_write()
    assert steps == len(NEW) + 1  # every byte, and the rename
    for keep_unclosed in (True, False):
        for cut in range(steps + 1):
            flash = FakeFlash(keep_unclosed)
            flash.files["f"] = OLD
            flash.cut_after(cut)
            try:  # noqa: SIM105 - MicroPython has no contextlib
                write_atomic(flash, "f", NEW)
            except PowerCut:
                pass
            assert read_bytes(flash, "f") == (NEW if cut >= steps else OLD), (keep_unclosed, cut)


def test_a_missing_file_reads_as_none():
    assert read_bytes(FakeFlash(), "nothing") is None
