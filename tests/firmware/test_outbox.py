# The serial port's output queue (link.Outbox) and the loop's use of it: whole lines only, events
# first, a full queue drops a routine line whole and counts it, an event waits for room and is
# never lost, a request waits until its reply has room. Runs on CPython and on MicroPython.
import gc
import json

from link import Outbox
from support import FakeHardware, Rig, load_board


class _Port:
    """A UART that takes `room` bytes per drain (None: everything), recording what it got."""

    def __init__(self, room=None):
        self.room = room
        self.data = b""
        self.waited = False

    def write(self, buf, off, n, wait=False):
        if self.room == 0 and not wait:
            return 0  # full, as a UART's FIFO: nothing taken (nor allocated here)
        if self.room is not None and not wait:
            n = min(n, self.room)
            self.room -= n
        self.waited = self.waited or wait
        chunk = buf[off:off + n]  # a long line is written from its str
        self.data += chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        return n

    def lines(self):
        return [line.decode() for line in self.data.split(b"\n")[:-1]]


def _drain(box, port, room):
    port.room = room
    box.drain()


def test_lines_go_out_whole_events_first_and_never_one_inside_another():
    port = _Port()
    box = Outbox(port.write)
    assert box.line('{"ok": true, "cmd": "status", "pad": "' + "s" * 200 + '"}')
    _drain(box, port, 50)  # the reply is on its way
    assert box.event('{"ev": "fault", "code": "ESTOP"}')
    assert box.line('{"ev": "status"}')
    _drain(box, port, 100)  # the reply's line is finished first, then the event
    _drain(box, port, 1000)
    lines = port.lines()
    assert [json.loads(line).get("ev") for line in lines] == [None, "fault", "status"]
    assert box.pending() == 0 and not port.waited


def test_a_full_queue_drops_a_routine_line_whole_and_counts_it():
    port = _Port(0)
    box = Outbox(port.write, event_bytes=64, line_bytes=100)
    assert box.line("a" * 60)
    assert not box.line("b" * 60) and box.dropped == 1  # no room: none of it is queued
    assert not box.event("e" * 70) and box.dropped == 1  # an event is written again: not dropped
    assert not box.event_once("e" * 70) and box.dropped == 2  # written once: dropped, counted
    _drain(box, port, 1000)
    assert port.lines() == ["a" * 60]


def test_the_queue_reuses_its_room_and_holds_what_it_says():
    port = _Port()
    box = Outbox(port.write, event_bytes=64, line_bytes=100)
    for i in range(50):  # many times round: the buffer's front is used again
        assert box.line("%02d" % i + "x" * (i % 40))
        _drain(box, port, 40)  # less than some lines: they go out over two drains
    _drain(box, port, 10000)
    assert port.lines() == ["%02d" % i + "x" * (i % 40) for i in range(50)]
    assert box.line("y" * 97)  # exactly the queue: 97 + "\n" + the 2-byte length
    assert not box.line("y" * 98)


def test_draining_allocates_nothing():
    if not hasattr(gc, "mem_alloc"):
        return  # CPython: nothing to measure
    port = _Port(0)
    box = Outbox(port.write)
    box.line("z" * 300)
    box.event("w" * 300)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        n = 20
        while n:  # (a for loop's range would be counted)
            box.drain()  # the port is full: nothing moves
            n -= 1
        idle = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert idle == 0, idle


def test_the_loop_paces_its_lines_and_a_fault_is_never_lost_behind_them():
    rig = Rig().attach_memory()
    rig.hw.serial_room_per_tick = 115  # what 115200 baud carries in 10 ms
    rig.start_emitting()
    written = rig.hw.serial_written
    for _ in range(30):  # a host asking for status every tick: far more than the line carries
        rig.hw.serial_in += b'{"cmd": "status"}\n'
        rig.tick()
    assert rig.hw.serial_written - written <= 30 * 115 and rig.hw.serial_waited == 0
    rig.set(estop_pressed=True)
    for _ in range(100):
        rig.tick()
        if rig.events("fault"):
            break
    assert rig.state == "FAULT" and [e["code"] for e in rig.events("fault")] == ["ESTOP"]
    assert rig.hw.serial_waited == 0


def test_a_request_waits_in_the_port_until_its_reply_has_room():
    rig = Rig().attach_memory()
    rig.hw.serial_room_per_tick = 115
    rig.run_ms(500)
    for i in range(3):
        rig.hw.serial_in += b'{"cmd": "status", "id": %d}\n' % i
    replies = []
    for _ in range(100):
        rig.tick()
        replies = rig.replies()
        if len(replies) == 3:
            break
    # Every line answered, in order, none dropped: a reply of ~700 bytes takes about 7 ticks.
    assert [r["id"] for r in replies] == [0, 1, 2] and all(r["ok"] for r in replies)
    assert rig.app.outbox.dropped == 0 and rig.hw.serial_waited == 0


def test_a_line_longer_than_the_queue_goes_out_whole_from_its_own_text():
    port = _Port()
    box = Outbox(port.write, event_bytes=64, line_bytes=100)
    long_line = '{"ok": true, "records": "' + "r" * 300 + '"}'
    assert box.line(long_line)  # the queue is empty: kept as it is
    assert not box.ready()  # no request until it is out
    assert box.line("after")  # a status line meanwhile: queued behind it
    assert not box.line(long_line) and box.dropped == 1  # one long line at a time
    for room in (0, 150, 0, 150, 1, 500):
        _drain(box, port, room)
    assert port.lines() == [long_line, "after"] and box.pending() == 0 and box.ready()


def test_a_reply_longer_than_the_queue_reaches_the_host_whole():
    # The firmware's queue takes every usual reply; a smaller one shows the rule: a status reply
    # (~750 bytes) goes from its own text, and the next request waits until it is out.
    hw = FakeHardware(board=load_board())
    hw.serial_room_per_tick = 115
    rig = Rig(hw=hw, outbox=Outbox(hw.write_serial, line_bytes=400)).attach_memory()
    rig.hw.serial_in += b'{"cmd": "status", "id": 1}\n{"cmd": "status", "id": 2}\n'
    rig.run_ms(300)
    replies = rig.replies()
    assert [r["id"] for r in replies] == [1, 2] and all(r["ok"] for r in replies)
    assert len(json.dumps(replies[0])) > 400 and rig.app.outbox.dropped == 0
    assert rig.hw.serial_waited == 0


def test_status_lines_the_port_cannot_carry_are_dropped_whole_and_the_host_can_tell():
    hw = FakeHardware(board=load_board())
    hw.serial_room_per_tick = 10  # 10 kbaud's worth a tick: a status line takes ~37 ticks
    rig = Rig(hw=hw).attach_memory()
    rig.run_ms(3000)
    statuses = rig.events("status")
    assert rig.app.outbox.dropped > 0 and statuses
    assert statuses[-1]["serial_dropped"] > 0  # counted in the lines that do go out
    # (A board whose status lines take more than a quarter of its line is refused: board.py.
    # Here the port never empties, and a request waits for that: let it catch up.)
    rig.hw.serial_room_per_tick = None
    assert rig.send({"cmd": "status"})["serial_dropped"] >= statuses[-1]["serial_dropped"]


def test_events_that_find_their_queue_full_are_written_later_never_lost():
    hw = FakeHardware(board=load_board())
    rig = Rig(hw=hw, outbox=Outbox(hw.write_serial, event_bytes=400)).attach_memory()
    rig.start_emitting()
    rig.hw.serial_room_per_tick = 20  # a slow line: the state line alone fills the event queue
    rig.set(estop_pressed=True)
    assert rig.state == "FAULT" and not rig.hw.enable  # the light is off whatever the port does
    for _ in range(300):
        rig.tick()
    events = [json.loads(line) for line in rig.lines]
    state, fault, session = [e for e in events if e.get("ev") in ("state", "fault", "session")][-3:]
    assert state["state"] == "FAULT" and fault["code"] == "ESTOP" and session["end"] == "FAULT"
    # Each waited for room in the event queue: queued ticks after the change, in order.
    assert state["t_ms"] < fault["t_ms"] < session["t_ms"], (state, fault, session)
    assert rig.hw.serial_waited == 0
