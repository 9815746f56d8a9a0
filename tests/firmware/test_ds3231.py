# The DS3231 driver (firmware/lib/ds3231.py) against a register map as the datasheet has it:
# BCD both ways, the oscillator-stopped flag, and registers no setting of the firmware's would
# leave, which it must not take for a time. Runs on CPython and on MicroPython.
from ds3231 import DS3231
from support import raises


class FakeBus:
    """An I2C bus with a DS3231's 19 registers at 0x68."""

    def __init__(self):
        self.regs = bytearray(19)
        self.regs[0x0F] = 0x80  # first power-up: the oscillator-stopped flag is set
        self.present = True

    def readfrom_mem(self, addr, memaddr, nbytes):
        self._answer(addr)
        return bytes(self.regs[memaddr:memaddr + nbytes])

    def writeto_mem(self, addr, memaddr, buf):
        self._answer(addr)
        for i, b in enumerate(buf):
            self.regs[memaddr + i] = b

    def _answer(self, addr):
        if not self.present or addr != 0x68:
            raise OSError(19)


def test_a_time_set_reads_back_and_is_stored_in_bcd():
    bus = FakeBus()
    clock = DS3231(bus)
    assert clock.datetime() is None  # never set: the flag says its time is not to be trusted
    clock.set_datetime((2026, 12, 6, 23, 59, 58), 6)  # a Sunday
    assert bytes(bus.regs[0:7]) == b"\x58\x59\x23\x07\x06\x12\x26"
    assert bus.regs[0x0F] & 0x80 == 0  # trusted again
    assert clock.datetime() == (2026, 12, 6, 23, 59, 58)


def test_a_stopped_oscillator_or_registers_the_firmware_never_writes_are_no_time():
    bus = FakeBus()
    clock = DS3231(bus)
    clock.set_datetime((2030, 1, 31, 12, 0, 0), 3)
    good = bytes(bus.regs)
    for index, value in ((0x0F, 0x88),  # the oscillator stopped (a flat battery)
                         (0, 0x5A),  # not BCD
                         (0, 0x60),  # 60 seconds
                         (2, 0x52),  # 12-hour mode, which the firmware never sets
                         (2, 0x24),  # 24 o'clock
                         (4, 0x00),  # day 0
                         (5, 0x13),  # month 13
                         (5, 0x81)):  # the century bit: the year passed 2099
        bus.regs[:] = good
        bus.regs[index] = value
        assert clock.datetime() is None, (index, value)
    bus.regs[:] = good
    assert clock.datetime() == (2030, 1, 31, 12, 0, 0)


def test_a_missing_part_raises_and_a_year_out_of_its_range_is_refused():
    bus = FakeBus()
    bus.present = False
    clock = DS3231(bus)
    raises(OSError, clock.datetime)
    raises(OSError, clock.set_datetime, (2026, 12, 6, 0, 0, 0), 6)
    bus.present = True
    error = raises(ValueError, clock.set_datetime, (2100, 1, 1, 0, 0, 0), 4)
    assert "2000..2099" in str(error)
    assert bytes(bus.regs[0:7]) == bytes(7)  # nothing written
