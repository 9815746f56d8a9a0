# What the buzzer says, in the manner of IEC 60601-1-8: alarm priorities, each with its own burst
# pattern, above the state tones (the warning before emission, the tone during it). One piezo
# on a GPIO cannot change pitch, so the patterns differ in rhythm. Pure: the time comes in.
from micropython import const

NONE = const(0)
LOW = const(1)  # information: the treatment is complete
MEDIUM = const(2)  # warnings: heatsink warm, power derated
HIGH = const(3)  # faults: emission stopped and latched
PRIORITY_NAMES = ("NONE", "LOW", "MEDIUM", "HIGH")

# Bursts: (pulses, on ms, off ms, repeat every s). High: 10 pulses; medium: 3; low: 1. (The
# repeat in seconds: an int past 13 bits in a tuple of constants is frozen into an image as a
# big-int object, MicroPython's mpy-tool, and every tick's arithmetic with it would allocate.)
_BURSTS = (None, (1, 300, 0, 15), (3, 200, 200, 8), (10, 120, 80, 5))
# State tones: (period ms, on ms). The warning is urgent and continuous; the emission tone calm.
WARNING_TONE = (400, 200)
EMISSION_TONE = (1000, 100)


# Where an alarm is in its pattern: one small int, not a tuple (called every tick: a tuple would
# be a heap allocation per tick).
BETWEEN = const(0)  # between bursts
GAP = const(1)  # in a burst, between pulses
SOUNDING = const(2)  # in a burst, a pulse


def burst(priority, since_ms):
    """BETWEEN, GAP or SOUNDING for an alarm raised since_ms ago (>= 0)."""
    pulses, on, off, repeat_s = _BURSTS[priority]
    t = since_ms % (repeat_s * 1000)
    if t >= pulses * (on + off):
        return BETWEEN
    return SOUNDING if t % (on + off) < on else GAP


def tone(pattern, since_ms):
    return since_ms % pattern[0] < pattern[1]


def buzzer(priority, alarm_since_ms, state_tone, tone_since_ms):
    """The buzzer level: an alarm's burst while it plays, else the state's tone (or None)."""
    if priority != NONE:
        phase = burst(priority, alarm_since_ms)
        if phase != BETWEEN or priority == HIGH:
            return phase == SOUNDING
    return tone(state_tone, tone_since_ms) if state_tone is not None else False
