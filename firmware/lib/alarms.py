# What the buzzer says, in the manner of IEC 60601-1-8: alarm priorities, each with its own burst
# pattern, above the state tones (the warning before emission, the tone during it). One piezo
# on a GPIO cannot change pitch, so the patterns differ in rhythm. Pure: the time comes in.
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


NONE = const(0)
LOW = const(1)  # information: the treatment is complete
MEDIUM = const(2)  # warnings: heatsink warm, power derated
HIGH = const(3)  # faults: emission stopped and latched
PRIORITY_NAMES = ("NONE", "LOW", "MEDIUM", "HIGH")

# Bursts: (pulses, on ms, off ms, repeat every ms). High: 10 pulses; medium: 3; low: 1.
_BURSTS = (None, (1, 300, 0, 15000), (3, 200, 200, 8000), (10, 120, 80, 5000))
# State tones: (period ms, on ms). The warning is urgent and continuous; the emission tone calm.
WARNING_TONE = (400, 200)
EMISSION_TONE = (1000, 100)


def burst(priority, since_ms):
    """(sounding, in_burst) of an alarm raised since_ms ago (>= 0)."""
    pulses, on, off, repeat = _BURSTS[priority]
    t = since_ms % repeat
    length = pulses * (on + off)
    if t >= length:
        return False, False
    return t % (on + off) < on, True


def tone(pattern, since_ms):
    return since_ms % pattern[0] < pattern[1]


def buzzer(priority, alarm_since_ms, state_tone, tone_since_ms):
    """The buzzer level: an alarm's burst while it plays, else the state's tone (or None)."""
    if priority != NONE:
        sounding, in_burst = burst(priority, alarm_since_ms)
        if in_burst or priority == HIGH:
            return sounding
    return tone(state_tone, tone_since_ms) if state_tone is not None else False
