"""No host tool crashes on bytes from a device (issue 14, point 9): the readers of laserctl's
tools (serial_link, which journal, console, calibrate and deploy use; deploy's mpremote output; the
run console) fed raw bytes that are not UTF-8, lone surrogates as raw bytes and as JSON escapes,
NUL, over-deep JSON, replies without their fields: nothing raises, and whatever they hand on can
be printed and written as UTF-8."""

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools import console, deploy, device_lines, serial_link

any_char = st.characters() | st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from("\x00\x03\xe9")
json_lines = st.dictionaries(st.sampled_from(["ev", "ok", "id", "error", "why", "state", "x"]),
                             st.text(any_char, max_size=6) | st.integers() | st.booleans(),
                             max_size=4).map(lambda d: json.dumps(d).encode() + b"\n")
raw_lines = st.lists(st.binary(max_size=10) | st.integers(0xD800, 0xDFFF).map(
    lambda c: chr(c).encode("utf-8", "surrogatepass")) | st.just(b"\x00\xff"), max_size=5).map(
    lambda parts: b"".join(parts).replace(b"\n", b"") + b"\n")
DEEP = b"[" * 5000 + b"]" * 5000 + b"\n"


class FakePort:
    """A serial port holding `data`: what pyserial's readline and in_waiting give of it."""

    def __init__(self, data):
        self.data = bytearray(data)
        self.written = b""

    def readline(self):
        end = self.data.find(b"\n")
        end = len(self.data) if end < 0 else end + 1
        line = bytes(self.data[:end])
        del self.data[:end]
        return line

    @property
    def in_waiting(self):
        return len(self.data)

    def write(self, data):
        self.written += data

    def close(self):
        pass


def _link(monkeypatch, data):
    port = FakePort(data)
    monkeypatch.setattr(serial_link.serial, "Serial", lambda *args, **kwargs: port)
    lines = []
    return serial_link.SerialLink("fake", timeout_s=0.2, on_line=lines.append), lines


def _printable(value):
    """`value` can be printed and written as UTF-8 (a lone surrogate cannot)."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(json_lines | raw_lines | st.just(DEEP), min_size=1, max_size=8))
def test_serial_link_takes_any_bytes_and_hands_on_only_printable_text(monkeypatch, lines):
    link, seen = _link(monkeypatch, b"".join(lines))
    events = link.poll()
    assert link._port.in_waiting == 0  # every line read
    for value in (events, seen):
        _printable(value)
    for event in events:
        console.event_text(event).encode("utf-8")


def test_a_reply_without_its_error_is_refused_in_words(monkeypatch):
    link, _ = _link(monkeypatch, b'{"ok": false, "id": 1}\n')
    with pytest.raises(serial_link.DeviceError, match="refused, without a reason"):
        link.call("status")


def test_an_object_is_found_after_a_cut_line_with_lone_surrogate_escapes():
    obj = device_lines.object_in('garbage {"ev": "error", "error": "\\ud800 \\udfff"}')
    assert obj == {"ev": "error", "error": "\ufffd \ufffd"}
    assert device_lines.object_in('{"ev": "sta{"ev": "state", "state": "READY"}') == \
        {"ev": "state", "state": "READY"}
    assert device_lines.object_in("{" * 3000) is None
    assert device_lines.object_in("[1, 2]") is None


def test_an_output_splits_into_events_replies_and_other_lines():
    output = b'{"ev": "boot"}\r\n{"ok": true, "id": 1}\nMPY: soft reboot\nTraceback\xff\n\n' \
        b'virtual device: reset\n{"ev": "status", "ok": 1}\n[1]\n'
    events, replies, other = device_lines.split(output)
    assert events == [{"ev": "boot"}, {"ev": "status", "ok": 1}]
    assert replies == [{"ok": True, "id": 1}]
    assert other == ["Traceback\ufffd", "[1]"]


def test_deploy_reads_mpremote_output_that_is_not_utf8(monkeypatch):
    real_run = subprocess.run
    printed = b"\xff\xfe\xed\xa0\x80 {half\n" + json.dumps(
        {"mpy": 6, "micropython": "1.28.0", "files": {}, "dirs": []}).encode() + b"\n"

    def run(argv, **kwargs):  # mpremote, as a device that prints bytes that are not UTF-8
        return real_run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(%r)"
                         % printed], **kwargs)

    monkeypatch.setattr(deploy.subprocess, "run", run)
    assert deploy.inspect("fake")["micropython"] == "1.28.0"
    printed = b"{\xff not json\n"
    with pytest.raises(deploy.DeployError, match="did not list its files"):
        deploy.inspect("fake")


def test_text_and_parse():
    assert device_lines.text(b"a\xffb\xed\xa0\x80") == "a\ufffdb\ufffd\ufffd\ufffd"
    assert device_lines.parse(b'{"a": ["\\ud83d\\ude00", "\\ud800"]}\r\n') == \
        {"a": ["\U0001f600", "\ufffd"]}
    assert device_lines.parse(DEEP) is None and device_lines.parse(b"\x00") is None
