# Garbage collection on the loop's terms (app.py, heap.py): the heap is collected at the end of a
# tick, after its outputs took effect, when the state changed, after a serial request and every
# quarter second; while emitting only when the state changes and every second, and the automatic
# collection's threshold is off. The collector and
# the threshold are swapped for recorders here (on CPython they do nothing anyway).
# Runs on CPython and on MicroPython.
import heap
from support import Rig


class _Log:
    """The order of what happens in the ticks: sense, actuate and collect, with the time."""

    def __init__(self, rig):
        self.rig = rig
        self.events = []
        hw = rig.hw
        sense, actuate = hw.sense, hw.actuate

        def logged_sense(inp, now_ms):
            self.events.append(("sense", now_ms))
            sense(inp, now_ms)

        def logged_actuate(out):
            self.events.append(("actuate", rig.now_ms))
            return actuate(out)

        hw.sense, hw.actuate = logged_sense, logged_actuate
        rig.app.collect_garbage = self.collect

    def collect(self):
        self.events.append(("collect", self.rig.now_ms))

    def collections(self):
        return [t for name, t in self.events if name == "collect"]


def _thresholds():
    """Record heap.threshold's calls: (the list, undo)."""
    calls = []
    threshold = heap.threshold

    def undo():
        heap.threshold = threshold

    heap.threshold = calls.append
    return calls, undo


def test_the_loop_collects_only_after_a_ticks_outputs_took_effect():
    rig = Rig().attach_memory()
    log = _Log(rig)
    rig.start_emitting()
    rig.run_ms(2000)
    rig.send({"cmd": "status"})
    rig.hw.press_footswitch(False)
    rig.run_ms(1000)
    assert len(log.collections()) >= 10
    last = None
    for name, t in log.events:
        if name == "collect":  # within a tick: after its outputs, before the next tick's inputs
            assert last == ("actuate", t), (last, t)
        last = (name, t)


def test_the_loop_collects_on_each_state_change_after_each_request_and_every_quarter_second():
    rig = Rig().attach_memory()
    log = _Log(rig)
    rig.run_ms(1000)  # STANDBY, quiet: a collection every 250 ms
    quiet = log.collections()
    assert quiet == [quiet[0] + 250 * i for i in range(4)], quiet
    rig.set(key_on=True)
    del log.events[:]
    pressed_ms = rig.now_ms
    rig.press("arm_pressed")  # READY in the tick that saw the press: collected at its end
    assert rig.state == "READY" and log.collections() == [pressed_ms], log.collections()
    del log.events[:]
    asked_ms = rig.now_ms
    rig.send({"cmd": "status"})  # answered in the tick that read it: collected at its end
    assert log.collections() == [asked_ms], (log.collections(), asked_ms)
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.hw.press_footswitch()
    for _ in range(100):
        entered_ms = rig.now_ms
        rig.tick()
        if rig.state == "EMITTING":
            break
    assert entered_ms in log.collections()  # the tick that turned the light on, at its end


def test_the_automatic_collection_is_off_while_emitting_and_bounded_otherwise():
    calls, undo = _thresholds()
    try:
        rig = Rig()
        assert calls == [8192]  # STANDBY after boot: collected every 8 KB of allocation
        rig.start_emitting()
        assert calls == [8192, 8192, -1]  # READY, then EMITTING: only where the loop chooses
        rig.hw.press_footswitch(False)
        rig.run_ms(100)
        assert rig.state == "PAUSED" and calls == [8192, 8192, -1, 8192]
    finally:
        undo()


def test_while_emitting_the_loop_collects_once_a_second_whatever_the_host_asks():
    rig = Rig().attach_memory()
    log = _Log(rig)
    rig.start_emitting()
    entered_ms = log.collections()[-1]  # the tick that lit the light, at its end
    del log.events[:]
    for _ in range(300):  # 3 s with a status request every tick: none of them collects
        rig.send({"cmd": "status"})
    assert rig.state == "EMITTING"
    assert log.collections() == [entered_ms + 1000 * i for i in (1, 2, 3)], \
        (log.collections(), entered_ms)
    del log.events[:]
    rig.hw.press_footswitch(False)
    while rig.state == "EMITTING":
        paused_ms = rig.now_ms
        rig.tick()
    assert rig.state == "PAUSED" and log.collections() == [paused_ms]  # the pause's own tick
