# The order of the loop's tick (app.App.STAGES): the tick's outputs are applied before anything
# in it writes to the flash or takes a serial request, and a serial button command (arm, disarm,
# reset, ack), taken after the outputs, reaches the next tick's step.
from fakeflash import FakeFlash
from support import PIN, FakeHardware, Rig, load_board


class _Hardware(FakeHardware):
    """A FakeHardware that notes in `log` when a tick begins (sense) and when its outputs are
    applied (actuate)."""

    def __init__(self, log, board):
        FakeHardware.__init__(self, board=board)
        self.log = log

    def sense(self, inp, now_ms):
        self.log.append("sense")
        FakeHardware.sense(self, inp, now_ms)

    def actuate(self, out):
        self.log.append("actuate")
        return FakeHardware.actuate(self, out)


class _Flash(FakeFlash):
    """A FakeFlash that notes every write (a file opened to write, a rename, a removal) in
    `log`, in one list with the hardware's calls."""

    def __init__(self, log):
        FakeFlash.__init__(self)
        self.log = log

    def open(self, path, mode):
        if "r" not in mode:
            self.log.append("write " + path)
        return FakeFlash.open(self, path, mode)

    def rename(self, old, new):
        self.log.append("rename " + new)
        FakeFlash.rename(self, old, new)

    def remove(self, path):
        self.log.append("remove " + path)
        FakeFlash.remove(self, path)


def _rig():
    log = []
    board = load_board()
    rig = Rig(board=board, hw=_Hardware(log, board)).attach_memory(_Flash(log))
    del log[:]  # the boot's own writes (the boot record), before any tick
    return rig, log


def _writes(log):
    return [event for event in log if event not in ("sense", "actuate")]


def _early_writes(log):
    """The flash writes that came, in their tick, before the tick's outputs were applied."""
    early, applied = [], False
    for event in log:
        if event == "sense":
            applied = False
        elif event == "actuate":
            applied = True
        elif not applied:
            early.append(event)
    return early


def test_a_wrong_pin_is_journalled_after_the_outputs_of_its_tick():
    rig, log = _rig()
    rig.hw.serial_in += b'{"cmd": "service", "pin": "0000"}\n'
    rig.tick()
    assert rig.replies()[-1]["error"] == "service: wrong PIN (4 tries left)"
    assert rig.records("pin_wrong")  # journalled in this very tick ...
    assert log[:2] == ["sense", "actuate"] and _writes(log), log  # ... after its outputs
    assert _early_writes(log) == []


def test_no_serial_request_writes_to_the_flash_before_the_outputs_of_its_tick():
    rig, log = _rig()
    rig.set(key_on=True)
    assert rig.send({"cmd": "service", "pin": "0000"})["ok"] is False
    assert rig.send({"cmd": "clock", "utc_s": 1800000000})["set"] is True
    assert rig.send({"cmd": "select", "protocol": "low-back-acute"})["ok"] is True
    assert rig.send({"cmd": "service", "pin": PIN})["ok"] is True
    assert rig.send({"cmd": "limits", "max_power_w": 12.0})["ok"] is True
    assert rig.send({"cmd": "logout"})["ok"] is True
    written = set(event.split(" ")[1] for event in _writes(log))
    assert "treatment.json" in written and len(written) >= 3, written  # the journal, settings
    assert _early_writes(log) == []


def test_a_serial_arm_and_disarm_reach_the_step_of_the_next_tick():
    rig, _ = _rig()
    rig.set(key_on=True)
    for name, was, now in (("arm", "STANDBY", "READY"), ("disarm", "READY", "STANDBY")):
        taken = rig.app.commands.requests
        replies = len(rig.replies())
        rig.hw.serial_in += ('{"cmd": "%s", "id": %d}\n' % (name, taken + 1)).encode()
        rig.tick()
        # Taken after this tick's outputs, for the next tick's step: unanswered until then.
        assert rig.app.commands.requests == taken + 1
        assert rig.state == was and len(rig.replies()) == replies
        rig.tick()
        assert rig.state == now
        reply = rig.replies()[-1]
        assert reply == {"ok": True, "cmd": name, "id": taken + 1, "state": now}, reply
    assert [e["end"] for e in rig.events("session")][-1:] == ["DISARMED"]


def test_a_serial_reset_and_ack_reach_the_step_of_the_next_tick():
    rig, _ = _rig()
    rig.set(estop_pressed=True)
    rig.set(estop_pressed=False)
    assert rig.state == "FAULT" and not rig.app.controller.silenced
    rig.hw.serial_in += b'{"cmd": "ack"}\n'
    rig.tick()
    assert not rig.app.controller.silenced
    rig.tick()
    assert rig.app.controller.silenced and rig.replies()[-1]["ok"] is True
    rig.hw.serial_in += b'{"cmd": "reset"}\n'
    rig.tick()
    assert rig.state == "FAULT"
    rig.tick()
    assert rig.state == "STANDBY" and rig.replies()[-1] == {"ok": True, "cmd": "reset",
                                                            "state": "STANDBY"}


def test_a_serial_arm_before_a_tick_that_fails_is_refused_and_never_acted_on():
    rig, _ = _rig()
    rig.set(key_on=True)
    rig.hw.serial_in += b'{"cmd": "arm"}\n'
    rig.tick()  # taken, for the next tick's step ...
    rig.hw.fail_next_sense = True
    rig.tick()  # ... which fails before its step
    assert rig.replies()[-1] == {"ok": False, "cmd": "arm",
                                 "error": "arm: the tick failed (see the fault)"}
    assert rig.state == "FAULT" and rig.app.inputs.command is None
    rig.set(reset_pressed=True)
    rig.set(reset_pressed=False)
    rig.run_ms(100)
    assert rig.state == "STANDBY"  # the arm was not carried past the failure
