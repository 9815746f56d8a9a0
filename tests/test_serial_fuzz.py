"""Fuzzing the serial protocol (hypothesis, CPython): random bytes, random JSON and random
requests that look valid go through the real App's control loop, tick by tick. Whatever arrives,
no exception escapes the loop, nothing changes without a valid command, no service command
succeeds without a service session, and no light comes on (the footswitch is never pressed)."""

import json
import string

import commands
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import PIN, Rig

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
