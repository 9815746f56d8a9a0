"""Property test: whatever the operator and the sensors do, in any order and at any time, the
safety invariants hold on every tick. Random sequences run through the real App on a fake
hardware object (tests/firmware/support.py), in virtual time."""

from hypothesis import given, settings
from hypothesis import strategies as st
from support import Rig

ACTIONS = ("key", "interlock", "estop", "footswitch", "nc_contact", "arm", "reset",
           "temp_normal", "temp_hot", "temp_warm", "sensor_open", "sensor_short")
# Weighted towards what moves a treatment along, so that READY, EMITTING, PAUSED and COMPLETE
# are reached often enough for their rules to be exercised.
_WEIGHTED = ACTIONS + ("arm", "arm", "footswitch", "footswitch", "footswitch", "temp_normal")


def _apply(rig, action, therm, tick):
    levels = rig.hw.levels
    if action in ("key", "interlock", "estop"):
        name = {"key": "key_on", "interlock": "interlock_closed", "estop": "estop_pressed"}[action]
        levels[name] = not levels[name]
    elif action == "footswitch":
        rig.hw.press_footswitch(not levels["footswitch_no_closed"])
    elif action == "nc_contact":  # one contact alone: a broken wire or a stuck contact
        levels["footswitch_nc_closed"] = not levels["footswitch_nc_closed"]
    elif action in ("arm", "reset"):
        levels[action + "_pressed"] = True
        tick()
        levels[action + "_pressed"] = False
    else:
        rig.hw.thermistor_uv = {"temp_normal": int(therm.uv_at(30.0)),
                                "temp_warm": int(therm.uv_at(43.0)),
                                "temp_hot": int(therm.uv_at(46.0)),
                                "sensor_open": 3100000, "sensor_short": 0}[action]


def _check_tick(rig, history):
    hw, c = rig.hw, rig.app.controller
    lv = hw.levels
    state = rig.state
    if hw.duty_u16:
        assert hw.enable, "duty without the gate open"
    # EMITTING exactly when the gate is open: the supervisor never has to veto a correct state
    # machine, so a state machine that emits (or believes it does) wrongly shows up here.
    assert hw.enable == (state == "EMITTING"), (state, hw.enable)
    if hw.enable:
        assert lv["key_on"] and lv["interlock_closed"] and not lv["estop_pressed"]
        assert lv["footswitch_no_closed"] and not lv["footswitch_nc_closed"]
        assert c.temp_c is not None and c.temp_c < rig.board["thermal"]["shutdown_c"]
    if not (lv["key_on"] and lv["interlock_closed"]):
        assert state in ("STANDBY", "FAULT", "COMPLETE"), state
    now_ms = rig.now_ms - rig.period_ms  # the time of the tick just run
    if history and history[-1][1] == "READY" and state == "EMITTING":
        assert now_ms - history[-1][0] >= rig.board["timing"]["emission_delay_ms"]
    if history and history[-1][1] == "FAULT" and state != "FAULT":
        # Left only by reset, and only once every cause is gone.
        assert state == "STANDBY"
        assert not lv["estop_pressed"] and c.temp_c is not None
        thermal = rig.board["thermal"]
        assert c.temp_c < thermal["shutdown_c"] - thermal["hysteresis_c"]
        assert lv["footswitch_no_closed"] != lv["footswitch_nc_closed"]
    half_tick_mj = rig.treatment.power_uw * rig.period_ms // 2000000
    assert rig.app.dosimeter.energy_mj <= rig.treatment.target_mj + half_tick_mj
    if not history or history[-1][1] != state:
        history.append((now_ms, state))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(("cold", "key on", "emitting")),
       st.lists(st.tuples(st.sampled_from(_WEIGHTED), st.integers(0, 1500)), max_size=40))
def test_safety_invariants_hold_for_any_sequence(start, steps):
    rig = Rig(power_w=10.0, dose_j_cm2=1.0, area_cm2=10.0)  # 10 J: COMPLETE is reachable
    therm = rig.app.controller.thermal.sensor
    history = []
    rig.hw.levels["key_on"] = start != "cold"
    if start == "emitting":  # begin where the interesting transitions are
        rig.start_emitting()
        history.append((rig.now_ms - rig.period_ms, "EMITTING"))

    def tick():
        rig.tick()
        _check_tick(rig, history)

    for action, wait_ms in steps:
        _apply(rig, action, therm, tick)
        for _ in range(wait_ms // rig.period_ms + 1):
            tick()
