"""Fuzzing the serial protocol (hypothesis, CPython): random bytes, random JSON and random
requests that look valid go through the real App's control loop, tick by tick. Whatever arrives,
no exception escapes the loop, nothing changes without a valid command, no service command
succeeds without a service session, and no light comes on (the footswitch is never pressed).
Bytes that are not text (0x80-0xFF, NUL, control bytes, lone surrogates) give only ASCII JSON
lines, on CPython and on the MicroPython unix port."""

import json
import os
import string
import subprocess
import tempfile
from pathlib import Path

import commands
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import PIN, Rig

from host_tools import paths

FIRMWARE_TESTS = Path(__file__).resolve().parent / "firmware"

SERVICE = tuple(sorted(commands._SERVICE))
OPERATOR = tuple(sorted(set(commands._OPERATOR) | set(commands._BUTTON_COMMANDS)))
FIELDS = ("protocol", "skin_type", "from", "count", "pin", "points", "date", "due_days",
          "max_power_w", "max_energy_j", "new", "through", "id", "cmd")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
field_values = json_values | st.sampled_from(["knee", "tendinopathy", "2026-11-21", "1234",
                                              [[0, 0], [65535, 20.0]]])
requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from(OPERATOR + SERVICE)},
    optional={name: field_values for name in FIELDS if name != "cmd"})


def _device():
    rig = Rig().attach_memory()
    rig.set(key_on=True)
    return rig


def _snapshot(rig):
    """Everything a request could change. The one trace a refused request leaves is a wrong
    PIN's record in the journal: the lockout counts it across resets (docs/serial.md)."""
    c = rig.app.controller
    files = sorted((name, data) for name, data in rig.flash.files.items()
                   if name != "journal.log")
    records = [(r["ev"], r.get("code")) for r in rig.records() if r["ev"] != "pin_wrong"]
    return (c.state, c.locked, c.blocked, c.fault_code, rig.app.treatment, rig.app.selection,
            files, records, rig.app.commands.service_open, rig.app.supervisor.trip)


def _send_raw(rig, data):
    """Bytes onto the port, then enough ticks for every line in them to be answered."""
    rig.hw.serial_in += data
    budget = rig.app.commands.lines.budget  # bytes read per tick
    for _ in range(len(data) // budget + data.count(b"\n") * 2 + 4):
        assert rig.app.step(rig.now_ms), "an exception escaped into the loop's fault path"
        rig.now_ms += rig.period_ms
        assert not rig.hw.enable


def _check_loop_healthy(rig):
    assert rig.app.controller.fault_code is None
    assert rig.events("error") == []


@FUZZ
@given(st.binary(max_size=700))
def test_random_bytes_change_nothing(data):
    rig = _device()
    before = _snapshot(rig)
    _send_raw(rig, data + b"\n")
    _check_loop_healthy(rig)
    assert _snapshot(rig) == before
    assert all(reply["ok"] is False or reply.get("cmd") in ("status", "list", "journal")
               for reply in rig.replies())


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=5))
def test_random_json_changes_nothing(values):
    rig = _device()
    before = _snapshot(rig)
    _send_raw(rig, b"".join(json.dumps(v).encode() + b"\n" for v in values))
    _check_loop_healthy(rig)
    assert _snapshot(rig) == before
    assert len(rig.replies()) == len(values)  # every line answered, once


@FUZZ
@given(st.lists(requests, min_size=1, max_size=6))
def test_valid_looking_requests_never_pass_the_service_door(batch):
    rig = _device()
    for request in batch:
        if request.get("pin") == PIN:
            request["pin"] = PIN + "0"  # the fuzzer is not the technician
        before = _snapshot(rig)
        replies = len(rig.replies())
        _send_raw(rig, json.dumps(request).encode() + b"\n")
        _check_loop_healthy(rig)
        reply = rig.replies()[replies]
        if request["cmd"] in SERVICE:  # refused: for the session, or an earlier problem
            assert reply["ok"] is False, reply
        if not reply["ok"]:
            assert _snapshot(rig) == before, (request, reply)
    assert not rig.app.commands.service_open


def test_the_fuzzers_can_tell_a_change():
    # The same checks see a valid command's change: they are not blind.
    rig = _device()
    before = _snapshot(rig)
    _send_raw(rig, b'{"cmd": "select", "protocol": "knee"}\n')
    assert _snapshot(rig) != before
    _send_raw(rig, ('{"cmd": "service", "pin": "%s"}\n' % PIN).encode())
    assert rig.app.commands.service_open


def test_random_text_of_printable_characters_is_answered_line_by_line():
    rig = _device()
    lines = ["".join(string.printable[(i * 7 + j) % 94] for j in range(30)) for i in range(5)]
    _send_raw(rig, "\n".join(lines).encode() + b"\n")
    assert [r["ok"] for r in rig.replies()] == [False] * 5


# -- what the port may carry that is not text ----------------------------------------------------
# Raw bytes 0x80-0xFF, NUL and the REPL's control bytes, lone surrogates in the three-byte form
# WTF-8 and CESU-8 give them, and requests whose text holds all that, written as JSON escapes or
# as those raw bytes. Whatever comes, every line the firmware writes must be ASCII JSON that
# decodes to text without a lone surrogate, and the loop must run on.

# Any character, with the surrogates (a thousandth of the code points) and a few others drawn
# often enough to matter.
any_char = st.characters() | st.integers(0xD800, 0xDFFF).map(chr) | \
    st.sampled_from("\x00\x03\x7f\x80\xe9\U0001f600")
lone_surrogate = st.integers(0xD800, 0xDFFF).map(lambda c: chr(c).encode("utf-8", "surrogatepass"))
fragments = st.one_of(
    st.binary(max_size=12), lone_surrogate, st.integers(0x80, 0xFF).map(lambda b: bytes([b])),
    st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\xc3\xa9",
                     b"\xf0\x9f\x98\x80", b'{"cmd": "status"}']))
text_requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from(OPERATOR + SERVICE) | st.text(any_char, max_size=8)},
    optional={"id": st.text(any_char, max_size=8) | st.integers(), "protocol": st.text(any_char,
              max_size=8), "pin": st.text(any_char, max_size=6)})
encoded_requests = st.tuples(text_requests, st.booleans()).map(
    lambda r: json.dumps(r[0], ensure_ascii=r[1]).encode("utf-8", "surrogatepass"))
not_text_lines = st.lists(st.one_of(encoded_requests, st.lists(fragments, max_size=6).map(
    b"".join)), min_size=1, max_size=8).map(
    lambda lines: b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines))


def _lone_surrogates(value):
    if isinstance(value, str):
        return [c for c in value if 0xD800 <= ord(c) < 0xE000]
    if isinstance(value, dict):
        return _lone_surrogates(list(value)) + _lone_surrogates(list(value.values()))
    if isinstance(value, list):
        return [c for v in value for c in _lone_surrogates(v)]
    return []


def _check_written_line(raw):
    """`raw` (bytes) is one line the firmware wrote: ASCII JSON, an object, no lone surrogate."""
    assert all(b < 128 for b in raw), raw
    obj = json.loads(raw)
    assert isinstance(obj, dict) and not _lone_surrogates(obj), raw


@FUZZ
@given(not_text_lines)
def test_whatever_bytes_come_every_line_written_is_ascii_json(data):
    rig = _device()
    _send_raw(rig, data)
    _check_loop_healthy(rig)
    for line in rig.lines + [rig.last_status]:
        _check_written_line(line.encode("utf-8", "surrogatepass"))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(not_text_lines)
def test_on_micropython_whatever_bytes_come_every_line_written_is_ascii_json(data):
    """The same on the real interpreter, whose json.dumps writes what is beyond ASCII as raw
    bytes, during a treatment: tests/firmware/feed_serial.py prints every line as written."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(data)
        f.flush()
        proc = subprocess.run(
            [paths.micropython_executable(), str(FIRMWARE_TESTS / "feed_serial.py"), f.name],
            env=dict(os.environ, MICROPYPATH=os.pathsep.join(
                [".frozen", str(paths.FIRMWARE_LIB), str(FIRMWARE_TESTS)])),
            cwd=paths.REPO, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    *written, verdict = proc.stdout.splitlines()
    assert verdict.endswith(b" fault None"), verdict  # the loop ran on (a disarm may end it)
    assert written
    for raw in written:
        _check_written_line(raw)
        assert json.loads(raw).get("ev") != "error", raw
