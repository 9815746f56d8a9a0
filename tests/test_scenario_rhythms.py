"""Operator rhythms in scenario files: an event written once with "every_s" and "until_s" recurs,
and the device, its trace and the report see exactly what the events written out would give."""

import json

import pytest

from host_tools import scenario

START = [{"at_s": 0.5, "input": "key", "value": True},
         {"at_s": 1.0, "input": "arm", "value": True},
         {"at_s": 1.2, "input": "arm", "value": False},
         {"at_s": 4.0, "input": "footswitch", "value": True}]
PROTOCOL = {"power_w": 10.0, "dose_j_cm2": 2.0, "area_cm2": 50.0}
# The pedal lifted for 0.3 s every 4 s, arm pressed for 0.1 s every 3 s, a host asking for the
# status every 2.5 s.
RHYTHM = [{"at_s": 5.0, "input": "footswitch", "value": False, "every_s": 4, "until_s": 17},
          {"at_s": 5.3, "input": "footswitch", "value": True, "every_s": 4, "until_s": 17.3},
          {"at_s": 6.0, "input": "arm", "value": True, "every_s": 3, "until_s": 18},
          {"at_s": 6.1, "input": "arm", "value": False, "every_s": 3, "until_s": 18.1},
          {"at_s": 7.5, "serial": '{"cmd": "status"}', "every_s": 2.5, "until_s": 15}]


def _written_out():
    """RHYTHM as a file without recurrence would list it."""
    events = []
    for k in range(4):
        events.append((5.0 + 4 * k, 0, {"input": "footswitch", "value": False}))
        events.append((5.3 + 4 * k, 1, {"input": "footswitch", "value": True}))
    for k in range(5):
        events.append((6.0 + 3 * k, 2, {"input": "arm", "value": True}))
        events.append((6.1 + 3 * k, 3, {"input": "arm", "value": False}))
    for k in range(4):
        events.append((7.5 + 2.5 * k, 4, {"serial": '{"cmd": "status"}'}))
    events.sort(key=lambda e: (round(e[0] * 1e6), e[1]))
    return [{"at_s": round(t, 6), **e} for t, _, e in events]


def test_a_recurring_event_is_written_out_at_its_exact_times_in_time_order():
    expanded = scenario.expand_events(START + RHYTHM)
    assert expanded[:4] == START
    assert [dict(e, at_s=round(e["at_s"], 6)) for e in expanded[4:]] == _written_out()
    # Whole microseconds: the 100th repetition of 0.1 s lands on 10.0 s, not a hair off it.
    many = scenario.expand_events([{"at_s": 0.1, "input": "arm", "value": True,
                                    "every_s": 0.1, "until_s": 10.0}])
    assert len(many) == 100 and many[-1]["at_s"] == 10.0
    assert all(round(e["at_s"] * 1e6) == 100000 * (i + 1) for i, e in enumerate(many))


def test_events_at_the_same_instant_keep_the_file_order():
    events = [{"at_s": 1.0, "input": "arm", "value": True, "every_s": 1, "until_s": 3},
              {"at_s": 2.0, "input": "arm", "value": False},
              {"at_s": 2.0, "input": "reset", "value": True, "every_s": 1, "until_s": 3}]
    got = [(e["at_s"], e["input"], e["value"]) for e in scenario.expand_events(events)]
    assert got == [(1.0, "arm", True), (2.0, "arm", True), (2.0, "arm", False),
                   (2.0, "reset", True), (3.0, "arm", True), (3.0, "reset", True)]


def test_the_report_shows_each_repetition_as_if_written_out():
    base = {"protocol": PROTOCOL, "until_s": 25}
    short = scenario.run(*scenario.validate({**base, "events": START + RHYTHM}))
    long = scenario.run(*scenario.validate({**base, "events": START + _written_out()}))
    assert short["trace"]["inputs"] == long["trace"]["inputs"]
    inputs = short["trace"]["inputs"][4:]
    assert [(round(t, 6), name) for t, name, _ in inputs] == \
        [(e["at_s"], e.get("input", "serial")) for e in _written_out()]
    for key in ("emission_intervals", "state_sequence", "delivered_j", "emitted_j", "serial",
                "vetoes", "sessions"):
        assert short[key] == long[key], key
    assert len(short["serial"]) == 4 and all(s["reply"]["ok"] for s in short["serial"])
    assert len(short["emission_intervals"]) >= 4  # the pauses really happened


@pytest.mark.parametrize("event, field", [
    ({"every_s": 1}, "events[0]: a recurring event needs both every_s and until_s"),
    ({"until_s": 5}, "events[0]: a recurring event needs both every_s and until_s"),
    ({"every_s": 0, "until_s": 5}, "events[0].every_s"),
    ({"every_s": 0.0001, "until_s": 5}, "events[0].every_s"),
    ({"every_s": "1", "until_s": 5}, "events[0].every_s"),
    ({"every_s": 1, "until_s": 0.5}, "events[0].until_s"),
    ({"every_s": 1, "until_s": 31}, "events[0].until_s"),
    ({"every_s": 1, "until_s": True}, "events[0].until_s"),
    ({"every_s": 1, "until_s": 5, "after_s": 1}, "events[0]: must be exactly one of"),
])
def test_bad_recurrences_are_refused_naming_the_field(event, field):
    data = {"protocol": PROTOCOL, "until_s": 30,
            "events": [{"at_s": 1.0, "input": "arm", "value": True, **event}]}
    with pytest.raises(scenario.ScenarioError) as raised:
        scenario.validate(json.loads(json.dumps(data)))
    assert field in str(raised.value)


def test_a_scenario_of_more_than_100000_events_is_refused():
    every_ms = {"every_s": 0.001, "until_s": 60}
    data = {"protocol": PROTOCOL, "until_s": 60,
            "events": [{"at_s": 0.0, "input": "arm", "value": True, **every_ms},
                       {"at_s": 0.0, "serial": "{}", **every_ms}]}
    with pytest.raises(scenario.ScenarioError, match="more than 100000 events"):
        scenario.validate(data)
    data["events"].pop()
    scenario.validate(data)  # 60001 events: accepted
