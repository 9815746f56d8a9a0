# The serial port carries the JSON protocol and nothing else (link.py, commands.py, halt.py): a
# byte that a terminal or the REPL would act on (Ctrl-C, Ctrl-A, Ctrl-D, Ctrl-E) is only a byte of
# a line, which is refused, and the loop runs on; every line the firmware writes is ASCII JSON,
# whatever bytes or escapes a request held. Runs on CPython and on the MicroPython unix port,
# where json.dumps writes what is beyond ASCII as raw bytes (a lone surrogate as bytes that are not
# UTF-8 at all): the case these tests are for.
import json

import link
from halt import Halt, maintenance_why
from support import FakeHardware, Rig

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
# What a REPL user, mpremote or an attacker sends: raw REPL, Python lines, soft reset, paste mode.
ATTACKS = (CTRL_C, CTRL_C + CTRL_C + b"\r", b"\r" + CTRL_A,
           b"import machine; machine.Pin(4, machine.Pin.OUT, value=1)\r" + CTRL_D,
           CTRL_E + b"open('pwned', 'w').write('x')" + CTRL_D, CTRL_B, CTRL_D,
           b'{"cmd": "status"}' + CTRL_C)


def _rig():
    return Rig().attach_memory()


def _send_raw(rig, data, ticks=None):
    """Bytes onto the port, then enough ticks for every line in them to be read and answered."""
    rig.hw.serial_in += data
    for _ in range(ticks or len(data) // rig.app.commands.lines.budget + data.count(b"\n") + 3):
        rig.tick()


def _is_ascii(line):
    return all(byte < 128 for byte in line.encode())


def test_a_line_holding_ctrl_c_is_refused_naming_the_byte():
    rig = _rig()
    rig.set(key_on=True)
    _send_raw(rig, CTRL_C + b'{"cmd": "status", "id": 1}\n')
    reply = rig.replies()[-1]
    assert reply["ok"] is False and "id" not in reply, reply
    assert reply["error"].startswith("byte 0x03 (Ctrl-C) at column 1: a request is one line of "
                                     "printable ASCII; the REPL is only in a maintenance boot"), \
        reply
    assert rig.send({"cmd": "status", "id": 2})["ok"] is True  # the next line is a request again


def test_repl_bytes_while_emitting_change_nothing_and_the_loop_runs_on():
    rig = _rig()
    rig.start_emitting()
    files = sorted(rig.flash.files.items())
    replies = len(rig.replies())
    for attack in ATTACKS:
        _send_raw(rig, attack + b"\n")
        assert rig.state == "EMITTING" and rig.hw.enable and rig.hw.duty_u16 > 0
    refusals = rig.replies()[replies:]
    assert [r["error"][:7] for r in refusals] == ["byte 0x"] * len(ATTACKS), refusals
    assert rig.app.controller.fault_code is None and rig.events("error") == []
    assert sorted((n, d) for n, d in rig.flash.files.items() if n != "journal.log") == \
        [(n, d) for n, d in files if n != "journal.log"]
    assert rig.send({"cmd": "status"})["state"] == "EMITTING"
    rig.hw.press_footswitch(False)  # the pedal still rules the light
    rig.run_ms(100)
    assert rig.state == "PAUSED" and not rig.hw.enable


def test_the_reader_names_the_first_bad_byte_and_forgets_it_at_the_line_end():
    waiting = list(b'ab\x80c\x03d\n\n{"x": 1}\t\n')
    reader = link.LineReader(lambda: waiting.pop(0) if waiting else -1)
    assert reader.poll() is link.NOT_TEXT
    assert (reader.bad_byte, reader.bad_column) == (0x80, 3)
    # The empty line after it is skipped (no request, no verdict), the next is a line again;
    # a tab is JSON's whitespace: allowed.
    assert reader.poll() == b'{"x": 1}\t'
    assert reader.poll() is None
    # Long binary garbage: too long (its bytes are not reported), and the next line is judged
    # on its own.
    waiting.extend(bytes(range(256)).replace(b"\n", b"") * 3 + b"\n\x05\n")
    line = None
    while line is None:
        line = reader.poll()
    assert line is link.TOO_LONG
    assert reader.poll() is link.NOT_TEXT and (reader.bad_byte, reader.bad_column) == (5, 1)


def test_text_beyond_printable_ascii_is_refused_even_as_an_escape():
    rig = _rig()
    for line, field in (('{"cmd": "select", "protocol": "kn\\u00e9e"}', "protocol"),
                        ('{"cmd": "status", "id": "\\ud800"}', "id"),
                        ('{"cmd": "st\\u0003atus"}', "cmd"),
                        ('{"cmd": "status", "\\ud83d\\ude00": 1}', "a field name")):
        reply = rig.send(line)
        assert reply["ok"] is False and "id" not in reply, reply
        assert reply["error"].startswith(field + ": text must be printable ASCII, found \\u"), \
            reply
    reply = rig.send('{"cmd": "st\\u0061tus", "id": "\\u0041"}')  # escapes of ASCII: fine
    assert reply["ok"] is True and reply["id"] == "A", reply


def test_a_request_nested_too_deep_is_refused_without_recursion():
    rig = _rig()
    reply = rig.send('{"cmd": "select", "protocol": ' + "[" * 200 + "]" * 200 + "}")
    assert reply["error"] == "protocol: nested deeper than 4", reply
    calibration = rig.send({"cmd": "calibrate", "points": [[0, 0.0], [65535, 20.0]]})
    assert "nested" not in calibration["error"]  # 3 deep: refused for the session, not depth


def test_every_reply_is_ascii_json_whatever_the_request_held():
    rig = _rig()
    lines = [b'{"cmd": "\xc3\xa9"}', b'{"cmd": "\xed\xa0\x80"}', b"\xff\xfe\x00",
             b'{"cmd": "status", "id": "\xf0\x9f\x98\x80"}', b"\x00",
             b'{"cmd": "\\ud800", "id": "\\udc00x"}',
             b'{"cmd": "status", "\\u00e9": "\\ud83d\\ude00"}']
    before = len(rig.lines)
    _send_raw(rig, b"\n".join(lines) + b"\n")
    written = rig.lines[before:]
    assert len(rig.replies()) >= len(lines)
    for line in written:
        assert _is_ascii(line), line
        assert isinstance(json.loads(line), dict)


def test_dumps_escapes_beyond_ascii_and_replaces_a_lone_surrogate():
    assert link.dumps({"a": "caf\u00e9 \U0001f600"}) == '{"a": "caf\\u00e9 \\ud83d\\ude00"}'
    lone = json.loads('"x\\ud800y\\udc00z\\ud800"')  # as a request's escapes give it
    assert link.dumps([lone]) == '["x\\ufffdy\\ufffdz\\ufffd"]'
    pair = json.loads('"\\ud83d\\ude00"')  # MicroPython keeps the two halves: one pair again
    assert link.dumps(pair) == '"\\ud83d\\ude00"'
    assert link.dumps({"plain": [1, 2.5, None, True]}) == json.dumps({"plain": [1, 2.5, None,
                                                                               True]})


def test_the_halt_answers_every_line_with_its_reason_in_ascii():
    waiting = list(b'{"cmd": "status", "id": 4}\n' + CTRL_C + b"\n\xff\n" +
                        b'{"cmd": "status", "id": "\xc3\xa9"}\n')
    written = []
    halt = Halt("BoardError: board file board.json: caf\u00e9", lambda: waiting.pop(0)
                if waiting else -1, written.append)
    halt.announce()
    while halt.poll():
        pass
    assert all(_is_ascii(line) for line in written), written
    events = [json.loads(line) for line in written]
    assert events[0] == {"ev": "halted", "reason": "BoardError: board file board.json: caf\u00e9",
                         "repl": False}
    assert [e["ok"] for e in events[1:]] == [False] * 4
    assert events[1]["id"] == 4 and "id" not in events[2]
    assert events[1]["error"] == "halted: BoardError: board file board.json: caf\u00e9"


def test_the_halt_gives_the_repl_only_to_a_maintenance_boot():
    hw = FakeHardware()
    assert maintenance_why(None) is None and maintenance_why(hw) is None  # no flag file here
    hw.levels["reset_pressed"] = True
    assert maintenance_why(hw) == "reset button held at boot"
