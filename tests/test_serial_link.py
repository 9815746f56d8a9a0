"""The serial link's two ways of failing a newcomer: a PIN asked for where nobody can type it, and
a port another program holds."""

import os
import pty
import sys

import pytest

from host_tools import serial_link
from host_tools.serial_link import DeviceError, SerialLink, service_pin


class _NoTerminal:
    def isatty(self):
        return False


def test_without_a_pin_and_without_a_terminal_it_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv(serial_link.PIN_ENV, raising=False)
    monkeypatch.setattr(sys, "stdin", _NoTerminal())
    with pytest.raises(DeviceError) as e:
        service_pin()
    assert "give --pin PIN, set $LASERCTL_PIN (make deploy: PIN=...)" in str(e.value)
    assert service_pin("4321") == "4321"
    monkeypatch.setenv(serial_link.PIN_ENV, "1234")
    assert service_pin() == "1234"


def test_a_port_another_program_holds_is_named_as_such():
    main, secondary = pty.openpty()
    try:
        path = os.ttyname(secondary)
        first = SerialLink(path)
        try:
            with pytest.raises(DeviceError) as e:
                SerialLink(path)
            assert str(e.value) == ("cannot open %s: another program has it open (a serial "
                                    "console, mpremote, another laserctl): close that first"
                                    % path)
        finally:
            first.close()
    finally:
        os.close(main)
        os.close(secondary)
