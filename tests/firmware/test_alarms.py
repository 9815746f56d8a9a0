# The buzzer's language: alarm priorities with distinct bursts above the state tones, and the
# silence that mutes a high alarm for a while without clearing it. CPython and MicroPython.
import alarms
from support import Rig, heap_bytes


def _pulses(priority, span_ms):
    """Rising edges of the burst pattern over span_ms, in 10 ms steps."""
    edges, was = 0, False
    for t in range(0, span_ms, 10):
        on = alarms.burst(priority, t) == alarms.SOUNDING
        edges += on and not was
        was = on
    return edges


def test_each_priority_has_its_own_burst():
    assert _pulses(alarms.HIGH, 5000) == 10  # one high burst: 10 pulses, every 5 s
    assert _pulses(alarms.MEDIUM, 8000) == 3  # medium: 3 pulses every 8 s
    assert _pulses(alarms.LOW, 15000) == 1  # low: 1 pulse every 15 s
    assert _pulses(alarms.HIGH, 10000) == 20


def test_an_alarm_between_bursts_lets_the_state_tone_through_except_a_high_one():
    emitting = alarms.EMISSION_TONE
    # 3 s into a medium alarm there is no burst: the emission tone plays (on at 0..100 ms).
    assert alarms.buzzer(alarms.MEDIUM, 3000, emitting, 3050) is True
    assert alarms.buzzer(alarms.MEDIUM, 3000, emitting, 3500) is False
    # In a burst the alarm's pattern rules.
    assert alarms.buzzer(alarms.MEDIUM, 50, emitting, 500) is True
    # A high alarm is never mixed with anything.
    assert alarms.buzzer(alarms.HIGH, 3000, emitting, 3050) is False


def _buzzer_pattern(priority, tone, span_ms):
    for t in range(0, span_ms, 10):
        alarms.buzzer(priority, t, tone, t)


def test_the_buzzer_allocates_nothing_whatever_sounds():
    # It runs every tick: a tuple or a big int per call would be garbage 100 times a second.
    # (MicroPython only: CPython has no heap to count.)
    for priority in (alarms.NONE, alarms.LOW, alarms.MEDIUM, alarms.HIGH):
        for tone in (None, alarms.WARNING_TONE, alarms.EMISSION_TONE):
            spent = heap_bytes(_buzzer_pattern, priority, tone, 16000)  # every burst's repeat
            assert spent in (None, 0), (alarms.PRIORITY_NAMES[priority], tone, spent)


def _buzzer_edges(rig, ms):
    edges, was = 0, rig.hw.buzzer
    for _ in range(ms // rig.period_ms):
        rig.tick()
        edges += rig.hw.buzzer and not was
        was = rig.hw.buzzer
    return edges


def test_a_fault_sounds_high_and_ack_silences_it_for_a_while_without_clearing_it():
    rig = Rig()
    rig.start_emitting()
    rig.set(estop_pressed=True)
    assert rig.state == "FAULT" and rig.app.controller.alarm == alarms.HIGH
    assert _buzzer_edges(rig, 5000) == 10
    rig.press("ack_pressed")
    silence_ms = rig.board["timing"]["alarm_silence_ms"]
    assert _buzzer_edges(rig, silence_ms - 100) == 0
    assert rig.state == "FAULT" and rig.events("status")[-1]["silenced"] is True
    assert _buzzer_edges(rig, 6000) > 0, "the silence ends by itself"
    assert rig.state == "FAULT"


def test_the_warning_and_emission_tones_differ():
    rig = Rig()
    rig.arm()
    ready = _buzzer_edges(rig, 1600)  # the warning: a beep every 400 ms
    rig.run_ms(500)
    rig.press_footswitch()
    emitting = _buzzer_edges(rig, 2000)  # the emission tone: one a second
    assert ready == 4 and emitting == 2, (ready, emitting)


def test_a_warm_heatsink_sounds_a_medium_alarm_and_complete_a_low_one():
    rig = Rig(temp_c=39.0)
    rig.ramp_temp(39.0, 40.5, 0.2)
    assert rig.app.controller.alarm == alarms.MEDIUM
    assert rig.events("status")[-1]["alarm"] == "MEDIUM"
    rig = Rig(dose_j_cm2=1.0, area_cm2=10.0)
    rig.start_emitting()
    rig.run_ms(1500)
    assert rig.state == "COMPLETE" and rig.app.controller.alarm == alarms.LOW
