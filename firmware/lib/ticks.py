# Tick arithmetic. On the device (and on the virtual device) these are time's own functions; on
# CPython, where the logic is unit-tested, they follow the ESP32's 2**30 wrap so tests see the same
# arithmetic the chip does. Never use +, - or < on tick values.
try:
    from time import ticks_add, ticks_diff
except ImportError:
    _PERIOD = 1 << 30
    _HALF = 1 << 29

    def ticks_add(ticks, delta):
        return (ticks + delta) % _PERIOD

    def ticks_diff(end, start):
        return (end - start + _HALF) % _PERIOD - _HALF
