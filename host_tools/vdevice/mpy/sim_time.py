# The virtual device's clock: the ESP32 tick API (ticks_ms and ticks_us wrap at 2**30, as on the
# chip) over simworld's virtual time. Sleeping is what advances the world. simworld.install()
# makes it the `time` module.
import simworld
import utime
from utime import gmtime, localtime, mktime, time  # noqa: F401 - calendar time stays real

if utime.ticks_add(simworld.TICKS_MASK, 1) == 0:
    # The chip interpreter's own tick arithmetic wraps at 2**30 as the ESP32's does: use it.
    from utime import ticks_add, ticks_diff
else:  # the 64-bit unix port's wraps at 2**62
    from simworld import ticks_add, ticks_diff  # noqa: F401


def ticks_ms():
    return simworld.WORLD.ticks_ms()


def ticks_us():
    return simworld.WORLD.ticks_us()


def ticks_cpu():
    return simworld.WORLD.ticks_us()


def sleep_ms(ms):
    simworld.WORLD.sleep_us(int(ms) * 1000)


def sleep_us(us):
    simworld.WORLD.sleep_us(int(us))


def sleep(seconds):
    simworld.WORLD.sleep_us(int(seconds * 1000000))
