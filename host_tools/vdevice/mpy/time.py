# The virtual device's clock: the ESP32 tick API (ticks_ms wraps at 2**30, as on the chip) over
# simworld's virtual time. Sleeping is what advances the world.
import simworld
from utime import gmtime, localtime, mktime, time  # noqa: F401 - calendar time stays real

_PERIOD = 1 << 30
_HALF = 1 << 29


def ticks_ms():
    return simworld.WORLD.ticks_ms()


def ticks_us():
    return simworld.WORLD.ticks_us()


def ticks_cpu():
    return simworld.WORLD.ticks_us()


def ticks_add(ticks, delta):
    return (ticks + delta) % _PERIOD


def ticks_diff(end, start):
    return (end - start + _HALF) % _PERIOD - _HALF


def sleep_ms(ms):
    simworld.WORLD.sleep_us(int(ms) * 1000)


def sleep_us(us):
    simworld.WORLD.sleep_us(int(us))


def sleep(seconds):
    simworld.WORLD.sleep_us(int(seconds * 1000000))
