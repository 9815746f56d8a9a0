"""`laserctl bench` on the real MicroPython unix port: every figure it reports is a measurement."""

import json

import pytest

from host_tools import bench, cli, paths

TICKS = 200
STAGES = ["sense", "commands.poll", "dosimeter.account", "controller.step", "supervisor.veto",
          "actuate", "dosimeter.applied", "recorder.record", "logbook.record", "commands.finish",
          "outbox.drain"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    code = cli.main(["bench", "--ticks", str(TICKS), "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["command"] == "laserctl bench --out %s --ticks %d" % (out, TICKS)
    return report


def test_tick_cost_is_measured_against_the_empty_loop(run):
    assert run["ticks"] == TICKS
    for name in bench.STATES:
        state = run["states"][name]
        assert state["state"] == name
        assert all(us > 0 for us in state["tick_block_us"] + state["empty_block_us"])
        assert state["tick_us"] > 0 and state["empty_loop_us"] > 0
        assert state["ratio"] > 1
        assert state["ratio"] == pytest.approx(state["tick_us"] / state["empty_loop_us"])
        assert state["quiet_tick_us_median"] > 0
    assert run["states"]["EMITTING"]["laser_enable"] is True
    assert run["states"]["STANDBY"]["laser_enable"] is False


def test_allocation_per_tick_and_its_stages(run):
    for name in bench.STATES:
        state = run["states"][name]
        # Status lines: one every status period, i.e. some ticks but not most.
        every = run["status_period_ms"] // run["loop_ms"]
        assert state["status_ticks"] == pytest.approx(TICKS / every, abs=1)
        assert state["quiet_ticks"] + state["status_ticks"] == TICKS
        # A status-line tick does what a quiet tick does, and prints.
        assert state["status_tick_bytes_mean"] >= state["quiet_tick_bytes_max"]
        check = state["stages_check"]
        total = check["app_tick_bytes_per_tick"]
        assert total == pytest.approx(state["bytes_per_tick_mean"])
        assert check["sum_of_stages_bytes_per_tick"] == pytest.approx(total, rel=0.05, abs=32)
        stages = state["stages"]
        assert [s["stage"] for s in stages] == STAGES
        quiet = sum(s["quiet_bytes"] for s in stages)
        assert quiet == pytest.approx(state["quiet_tick_bytes_max"], rel=0.05, abs=32)
        # The simulated machine's share and the firmware's share make up the quiet tick.
        assert state["quiet_tick_sim_bytes"] + state["quiet_tick_firmware_bytes"] == \
            pytest.approx(quiet)
        for s in stages:
            assert 0 <= s["sim_quiet_bytes"] <= s["quiet_bytes"]
        # The call-by-call probes reach into the firmware: each must still find what it probes.
        calls = {c["call"]: c for c in state["calls"]}
        assert [c for c in calls.values() if "error" in c] == []
        assert calls["controller: Controller.step()"]["max"] == next(
            s["quiet_bytes"] for s in stages if s["stage"] == "controller.step")


def test_heap_after_boot_is_the_firmware_share(run):
    heap = run["heap_after_boot"]
    parts = heap["parts"]
    assert heap["bytes"] > 0 and heap["from_mpy_bytes"] > 0
    assert heap["bytes"] == sum(parts[k] for k in ("calibration_module", "modules", "board",
                                                   "hardware", "treatment", "app"))
    assert parts["modules"] > 0 and parts["app"] > 0


def test_mpy_total_is_the_sum_of_the_compiled_files(run):
    mpy_dir = paths.REPO / run["mpy"]["dir"]
    files = sorted(mpy_dir.rglob("*.mpy"))
    assert run["mpy"]["total_bytes"] == sum(f.stat().st_size for f in files) > 0
    compiled = sorted(str(f.relative_to(paths.REPO)) for f in files)
    assert compiled == sorted(f["mpy"] for f in run["mpy"]["files"])
    # One .mpy for every firmware source file.
    assert len(files) == len(bench.firmware_sources())


def test_ticks_out_of_range_is_refused(capsys):
    assert cli.main(["bench", "--ticks", "5"]) == 2
    assert "--ticks" in capsys.readouterr().err


def test_a_quiet_tick_allocates_nothing_on_the_chip_with_a_warning_sounding_too(run):
    # The chip interpreter: 32-bit, where a big int (past 2**30, or a frozen constant past 13
    # bits) and a tuple are heap allocations; the firmware frozen as in the image. The medium
    # alarm's burst pattern runs every tick while the heatsink is warm.
    quiet = run["quiet_tick_bytes"]["chip"]
    assert tuple(quiet) == bench.QUIET_STATES
    warm = quiet["EMITTING_WARNING"]
    assert (warm["state"], warm["thermal"], warm["alarm"]) == ("EMITTING", "WARNING", "MEDIUM")
    assert (quiet["EMITTING"]["thermal"], quiet["EMITTING"]["alarm"]) == ("NORMAL", "NONE")
    for name, r in quiet.items():
        assert r["sim_bytes"] > 0  # the simulated machine's share is seen, and set apart
        assert r["firmware_bytes"] == 0, (name, r["allocating_calls"])


def test_a_quiet_tick_of_the_firmware_allocates_nothing(run):
    # The firmware decides in integers (microvolts, microwatts, milliseconds): on a tick that
    # prints nothing it must not touch the heap. The simulated machine's share is not firmware.
    for name in bench.STATES:
        assert run["states"][name]["quiet_tick_firmware_bytes"] == 0, name
