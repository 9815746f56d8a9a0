"""The maintenance boot on the virtual device: with the flag file on the flash, or the reset button
held through boot, main.py starts neither the loop nor the watchdog (mpremote can always reach the
board), nothing arms, and it says how to leave; without them the loop and the watchdog run."""

import json
import subprocess

import pytest

from host_tools import device_lines, vdevice

TREATMENT = {"power_w": 10.0, "dose_j_cm2": 4.0, "area_cm2": 25.0}
# An operator trying to treat: key, arm, pedal.
EVENTS = [{"at_s": 0.5, "input": "key", "value": True},
          {"at_s": 1.0, "input": "arm", "value": True},
          {"at_s": 1.2, "input": "arm", "value": False},
          {"at_s": 4.0, "input": "footswitch", "value": True}]


def _boot(tmp_path, flag=False, reset_held=False):
    _, board = vdevice.load_board("sim")
    root = tmp_path / "device"
    vdevice.make_image(root, "sim", TREATMENT)
    if flag:
        (root / "maintenance").write_text("")
    trace = tmp_path / "trace.json"
    config = vdevice.sim_config(board, until_s=8, events=EVENTS, trace_path=str(trace),
                                initial={"reset": reset_held})
    config_path = tmp_path / "vdev.json"
    config_path.write_text(json.dumps(config))
    argv, env, cwd = vdevice.command(root, config_path)
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines, _, _ = device_lines.split(proc.stdout)
    world = json.loads(trace.read_text())
    return {line["ev"] for line in lines}, lines, world


@pytest.mark.parametrize("flag, reset_held, why", [
    (True, False, "flag file maintenance"), (False, True, "reset button held at boot")])
def test_a_maintenance_boot_runs_no_loop_and_no_watchdog(tmp_path, flag, reset_held, why):
    events, lines, world = _boot(tmp_path, flag, reset_held)
    assert events == {"maintenance"}, lines  # no boot, no self-test, no state: no loop
    assert lines[0]["why"] == why and "mpremote rm :maintenance" in lines[0]["leave"]
    assert world["trace"]["optical"] == []  # never emitted, pedal or not
    assert world["trace"]["resets"] == []  # 8 s without a feed: no watchdog was started


def test_a_normal_boot_runs_the_loop_under_the_watchdog(tmp_path):
    events, lines, world = _boot(tmp_path)
    assert {"boot", "selftest", "state", "status"} <= events and "maintenance" not in events
    assert next(line for line in lines if line["ev"] == "boot")["watchdog_ms"] == 500
    assert world["trace"]["optical"]  # the same operator's treatment emits
    assert world["trace"]["resets"] == []  # fed every tick
