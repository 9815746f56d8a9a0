# The DS3231, a battery-backed real-time clock on I2C: the optional board part ("rtc") that keeps
# the wall clock through a power cut, which the ESP32's own RTC loses. Only what the firmware
# needs of it: read and set the date and time, and whether its time can be trusted. Registers
# and bits from the Maxim DS3231 datasheet (19-5170). Runs on CPython and MicroPython: the I2C
# object is passed in (machine.I2C on the chip; the tests' and the virtual device's stand-ins).
from micropython import const

ADDRESS = const(0x68)  # fixed in the part
_TIME = const(0x00)  # seconds, minutes, hours, weekday, date, month, year: 7 BCD registers
_STATUS = const(0x0F)
_OSF = const(0x80)  # the oscillator stopped (first power-up, a flat battery): the time is not
_HOUR_12 = const(0x40)  # hours register: 12-hour mode (the firmware writes 24-hour)
_CENTURY = const(0x80)  # month register: the year counter wrapped past 99
# (register index, lowest, highest) of seconds, minutes, hours, date, month, year (00..99)
_LIMITS = ((0, 0, 59), (1, 0, 59), (2, 0, 23), (4, 1, 31), (5, 1, 12), (6, 0, 99))


class DS3231:
    """`i2c`: an I2C bus (readfrom_mem, writeto_mem) with the part at `address`."""

    def __init__(self, i2c, address=ADDRESS):
        self.i2c = i2c
        self.address = address

    def datetime(self):
        """(year, month, day, hour, minute, second) in UTC, or None if the part says its time
        cannot be trusted (its oscillator stopped since it was last set) or holds no valid date.
        OSError if it does not answer."""
        if self.i2c.readfrom_mem(self.address, _STATUS, 1)[0] & _OSF:
            return None
        regs = self.i2c.readfrom_mem(self.address, _TIME, 7)
        if regs[2] & _HOUR_12 or regs[5] & _CENTURY:
            return None  # not as the firmware set it
        values = []
        for index, low, high in _LIMITS:
            value = _from_bcd(regs[index] & (0x1F if index == 5 else 0x7F))
            if value is None or not low <= value <= high:
                return None
            values.append(value)
        second, minute, hour, day, month, year = values
        return (2000 + year, month, day, hour, minute, second)

    def set_datetime(self, t, weekday):
        """Set it to `t` = (year 2000..2099, month, day, hour, minute, second) UTC, `weekday`
        0..6 (Monday 0), and mark its time as good again. OSError if it does not answer."""
        year, month, day, hour, minute, second = t
        if not 2000 <= year <= 2099:
            raise ValueError("DS3231: year %d is outside 2000..2099" % year)
        self.i2c.writeto_mem(self.address, _TIME, bytes((
            _to_bcd(second), _to_bcd(minute), _to_bcd(hour), weekday + 1, _to_bcd(day),
            _to_bcd(month), _to_bcd(year - 2000))))
        status = self.i2c.readfrom_mem(self.address, _STATUS, 1)[0]
        self.i2c.writeto_mem(self.address, _STATUS, bytes((status & ~_OSF & 0xFF,)))


def _to_bcd(value):
    return (value // 10) << 4 | value % 10


def _from_bcd(byte):
    high, low = byte >> 4, byte & 0x0F
    if low > 9 or high > 9:
        return None
    return high * 10 + low
