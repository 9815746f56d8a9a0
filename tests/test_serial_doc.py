"""docs/serial.md documents the protocol command by command: every command the firmware knows has
a row in one of its tables and an example, and every example is a reply of the right shape to a
request the firmware accepts as a command."""

import json
import re
from pathlib import Path

import commands

DOC = Path(__file__).resolve().parent.parent / "docs" / "serial.md"
KNOWN = set(commands._OPERATOR) | set(commands._BUTTON_COMMANDS) | set(commands._SERVICE)


def _examples():
    lines = DOC.read_text().splitlines()
    return [(lines[i][2:], lines[i + 1][2:]) for i in range(len(lines) - 1)
            if lines[i].startswith("> ") and lines[i + 1].startswith("< ")]


def test_every_command_has_a_row_and_an_example():
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    assert rows == KNOWN, (sorted(KNOWN - rows), sorted(rows - KNOWN))
    shown = set()
    for request, _ in _examples():
        try:
            shown.add(json.loads(request).get("cmd"))
        except ValueError:
            continue
    assert shown >= KNOWN, sorted(KNOWN - shown)


def test_every_example_reply_is_a_reply_to_its_request():
    examples = _examples()
    assert len(examples) >= len(KNOWN)
    for request, reply_text in examples:
        reply = json.loads(reply_text)
        assert isinstance(reply["ok"], bool) and "ev" not in reply
        assert reply["ok"] or reply["error"]
        try:
            sent = json.loads(request)
        except ValueError:
            assert reply["ok"] is False and "not JSON" in reply["error"]
            continue
        assert reply["cmd"] == sent["cmd"]
        if reply["ok"]:
            assert sent["cmd"] in KNOWN
