"""`laserctl bench` on the real MicroPython unix port: every figure it reports is a measurement."""

import json

import pytest

from host_tools import bench, bench_chip, cli, heap_probe, paths

TICKS = 200
HEAP_STEP = 16384  # the coarsest the bench takes (make bench: 256 B): fewer runs of the search


def _stages():
    """The tick's stages as the App runs them (app.App.STAGES), which the bench times."""
    from app import App  # firmware/lib is on sys.path (conftest)

    return [stage.__name__.lstrip("_") for stage in App.STAGES]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    code = cli.main(["bench", "--ticks", str(TICKS), "--out", str(out),
                     "--heap-step", str(HEAP_STEP)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["command"] == "laserctl bench --out %s --ticks %d --heap-step %d" % (
        out, TICKS, HEAP_STEP)
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
        assert [s["stage"] for s in stages] == _stages()
        quiet = sum(s["quiet_bytes"] for s in stages)
        # (Mean against mean: the simulated plant allocates on the first tick after its clock
        # moved, when the thermistor's voltage is worked out anew, and not on the next ones.)
        histogram = state["tick_bytes_histogram"]["quiet"]
        quiet_mean = sum(int(b) * n for b, n in histogram.items()) / sum(histogram.values())
        assert quiet == pytest.approx(quiet_mean, rel=0.05, abs=32)
        # The simulated machine's share and the firmware's share make up the quiet tick.
        assert state["quiet_tick_sim_bytes"] + state["quiet_tick_firmware_bytes"] == \
            pytest.approx(quiet)
        for s in stages:
            assert 0 <= s["sim_quiet_bytes"] <= s["quiet_bytes"]
        # The call-by-call probes reach into the firmware: each must still find what it probes.
        calls = {c["call"]: c for c in state["calls"]}
        assert [c for c in calls.values() if "error" in c] == []
        assert calls["controller: Controller.step()"]["max"] <= next(
            s["quiet_bytes"] for s in stages if s["stage"] == "decide")  # the step is in it


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


def test_the_chip_block_holds_the_budget_and_labels_its_estimate(run):
    chip = run["chip"]
    frozen, mpy = chip["frozen"], chip["mpy"]
    assert frozen["ok"] and frozen["heap_total"] == 56000 and frozen["failed"] is None
    assert frozen["free_after_workload"] >= 16 * 1024
    assert frozen["largest_free_block_after_workload"] >= 4 * 1024
    # Bisected between what the boot holds and the ESP32's heap, where it ran.
    assert frozen["resident_after_boot"] < frozen["smallest_boot_heap"] <= 56000
    assert frozen["resident_after_boot"] < frozen["boot_peak_heap"] <= 56000
    # Compiled into the heap, the .mpy form does not boot in the ESP32's: its figures say so.
    assert not mpy["ok"] and "MemoryError" in mpy["failed"]
    assert mpy["free_after_workload"] is None and mpy["resident_after_boot"] is None
    assert 56000 < mpy["smallest_boot_heap"] <= heap_probe.SEARCH_CEILING
    assert 56000 < mpy["boot_peak_heap"] <= heap_probe.SEARCH_CEILING
    frozen_mpy = chip["frozen_mpy"]  # compiled by the chip build's mpy-cross, one per module
    assert frozen_mpy["files"] == len(list(paths.FIRMWARE_LIB.glob("*.py")))
    assert frozen_mpy["bytes"] > 0 and frozen_mpy["mpy_cross"] == "build/chip/mpy-cross/mpy-cross"
    alone = chip["firmware_alone_us"]
    assert (alone["standby_state"], alone["emitting_state"]) == ("STANDBY", "EMITTING")
    for key in ("standby_tick", "emitting_tick", "collect", "collect_emitting"):
        figure = alone[key]
        assert 0 < figure["min_us"] <= figure["median_us"] <= figure["max_us"], key
    # A status line every 250 ms: 8 of the 200 ticks timed, and they cost more.
    for key in ("standby_tick", "emitting_tick"):
        assert alone[key]["status_line_count"] == 8
        assert alone[key]["status_line_median_us"] > alone[key]["median_us"]
    stone = chip["pystone"]
    assert stone["pystones_per_s"] == stone["passes"] * 1000000 // stone["best_us"]
    estimate = chip["esp32_estimate"]
    assert estimate["what"].startswith("ESTIMATE, not a measurement")
    published = [p for p, _, _ in bench_chip.ESP32_PYSTONES]
    low, high = stone["pystones_per_s"] / max(published), stone["pystones_per_s"] / min(published)
    assert estimate["ratio"] == [round(low, 1), round(high, 1)]
    median_us = alone["emitting_tick"]["median_us"]
    assert estimate["emitting_tick_ms"] == [round(median_us * low / 1000, 1),
                                            round(median_us * high / 1000, 1)]
    # The operator panel drew while the EMITTING ticks were timed (esp32-devkitc has one): a
    # chunk's range in one command transaction of 8 bytes and its 32 bytes of data in another,
    # each with a start, the address, 9 bits a byte and a stop, at 400 kHz.
    tick = alone["emitting_tick"]
    assert alone["i2c"]["panel"] and tick["panel_draw_count"] > 0 and tick["panel_compose_count"]
    assert alone["i2c"]["max_tick_us"] == (2 + 9 * 8 + 2 + 9 * 34) * 1000000 // 400000
    panel = estimate["panel"]
    bus_ms = alone["i2c"]["max_tick_us"] / 1000
    assert panel["draw_ms"] == [round((tick["panel_draw_median_us"] - median_us) * r / 1000
                                      + bus_ms, 1) for r in (low, high)]
    # It works only in the first half of a tick: such a tick ends within the period.
    assert panel["tick_bound_ms"] == round(5 + max(panel["draw_ms"][1], panel["compose_ms"][1]),
                                           1) < 10
    table = bench.format_table(run)
    assert "ESTIMATED ESP32 (from that ratio, not measured)" in table
    assert "the operator panel's share of an EMITTING tick" in table
    assert table.index("On the chip interpreter") < table.index("For comparison, on the 64-bit")


def test_a_heap_step_out_of_range_is_refused(capsys):
    assert cli.main(["bench", "--heap-step", "8"]) == 2
    assert "--heap-step" in capsys.readouterr().err
