"""The protocol library on the virtual device: every preset delivered on the sim board, scenarios
that name a preset (and a skin type), the library on the device image, and docs/protocols.md
kept in step with firmware/protocols.json."""

import json
import subprocess
import sys

import pytest

from host_tools import paths, scenario, vdevice

protocols = paths.firmware_module("protocols")  # the firmware's own loader

LIBRARY = protocols.load(str(paths.FIRMWARE / "protocols.json"))
NAMES = protocols.names(LIBRARY)
START = [{"at_s": 0.5, "input": "key", "value": True},
         {"at_s": 1.0, "input": "arm", "value": True},
         {"at_s": 1.2, "input": "arm", "value": False},
         {"at_s": 4.0, "input": "footswitch", "value": True}]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_is_delivered_on_the_sim_board_within_a_tenth_of_a_percent(name):
    """On the chip interpreter: in single floats, as the ESP32 counts."""
    preset = protocols.find(LIBRARY, name)
    report = scenario.run(*scenario.validate({
        "board": "sim", "protocol": name, "events": START,
        "until_s": round(4.0 + preset["time_s"] * 1.1 + 5.0, 1)}), chip=True)
    assert report["errors"] == [] and report["fault_codes"] == []
    assert report["final_state"] == "COMPLETE"
    assert report["protocol_name"] == name and report["skin_type"] is None
    assert report["target_j"] == pytest.approx(preset["energy_j"], rel=1e-6)
    assert report["emitted_j"] == pytest.approx(preset["energy_j"], rel=0.001)
    assert report["delivered_j"] == pytest.approx(preset["energy_j"], rel=0.001)
    # At 25 C the sim board never derates them: the light is on for the written time.
    assert report["thermal_sequence"] == []
    assert report["emitting_s"] == pytest.approx(preset["time_s"], rel=0.002)


def test_a_skin_type_lowers_the_power_in_the_spec_written_to_the_device():
    assert scenario.treatment_spec({"protocol": "knee"}) == {
        "power_w": 10.0, "dose_j_cm2": 10.0, "area_cm2": 100.0}
    assert scenario.treatment_spec({"protocol": "knee", "skin_type": 5})["power_w"] == 8.0
    assert scenario.treatment_spec({"protocol": "low-back-acute", "skin_type": 6}) == {
        "power_w": 3.6, "dose_j_cm2": 6.0, "area_cm2": 500.0, "mode": "pulsed",
        "pulse_hz": 5000, "duty_pct": 50}
    # A protocol object passes as written, or through the same skin adjustment when asked.
    custom = {"power_w": 10.0, "dose_j_cm2": 1.0, "area_cm2": 10.0}
    assert scenario.treatment_spec({"protocol": custom}) is custom
    assert scenario.treatment_spec({"protocol": custom, "skin_type": 6})["power_w"] == 6.0


@pytest.mark.parametrize("change, message", [
    ({"protocol": "low-back-chronik"}, "protocol: unknown preset 'low-back-chronik' (known: "
                                       "low-back-acute, low-back-chronic,"),
    ({"protocol": "knee", "skin_type": 7}, "skin_type: must be a Fitzpatrick skin type 1..6"),
    ({"protocol": "knee", "skin_type": "V"}, "skin_type: must be a Fitzpatrick skin type 1..6"),
    ({"protocol": "knee", "skin_type": 0}, "skin_type: must be a Fitzpatrick skin type 1..6"),
    ({"protocol": 5}, "protocol: a preset name or an object"),
    ({"skin_type": 5}, "protocol: a preset name or an object"),
    ({"protocol": {"power_w": 0.8, "dose_j_cm2": 1.0, "area_cm2": 10.0, "energy_j": 99.0},
      "skin_type": 2}, "protocol 'custom': energy_j, dose_j_cm2, area_cm2: inconsistent"),
])
def test_unknown_presets_and_skin_types_exit_2_naming_them(tmp_path, change, message):
    data = {"until_s": 5, "protocol": "knee"}
    data.update(change)
    if "protocol" not in change and "skin_type" in change:
        del data["protocol"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    proc = _cli("scenario", str(path))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    with pytest.raises(scenario.ScenarioError):
        scenario.validate(data)


def test_the_device_image_carries_the_library_and_the_device_checks_it(tmp_path):
    root = tmp_path / "device"
    vdevice.make_image(root, "sim")
    assert (root / "protocols.json").read_bytes() == (paths.FIRMWARE / "protocols.json")\
        .read_bytes()
    # On the MicroPython interpreter, from the image's own files, as main.py would.
    code = ("import board, protocols\n"
            "lib = protocols.load('protocols.json')\n"
            "print(protocols.check_all(lib, board.load('board.json')), "
            "protocols.spec_for(lib, 'low-back-chronic', 6)['power_w'])\n")
    proc = subprocess.run([paths.micropython_executable(), "-c", code], cwd=root,
                          env={"MICROPYPATH": "lib"}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [str(7 * len(NAMES)), "7.2"]


def _fmt(value, digits=3):
    return ("%.*f" % (digits, value)).rstrip("0").rstrip(".")


def preset_rows():
    """docs/protocols.md's preset table, one row per preset, from the library itself."""
    rows = []
    for name in NAMES:
        info = protocols.describe(LIBRARY, name)
        preset = protocols.find(LIBRARY, name)
        mode = "cw" if info["mode"] == "cw" else "pulsed %d Hz %s %% (peak %s W)" % (
            info["pulse_hz"], _fmt(info["duty_pct"]), _fmt(info["peak_w"]))
        skin = " / ".join("%s W %s s" % (_fmt(protocols.describe(LIBRARY, name, t)["power_w"]),
                                         _fmt(protocols.describe(LIBRARY, name, t)["time_s"], 1))
                          for t in (5, 6))
        rows.append("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, info["region"], info["condition"], _fmt(info["power_w"]), mode,
            _fmt(info["dose_j_cm2"]), _fmt(info["area_cm2"]), _fmt(preset["energy_j"]),
            _fmt(preset["time_s"], 1), _fmt(info["irradiance_w_cm2"], 4), skin))
    return rows


def test_the_docs_table_lists_every_preset_as_the_library_has_it():
    docs = (paths.REPO / "docs" / "protocols.md").read_text()
    for row in preset_rows():
        assert row in docs, "docs/protocols.md lacks or differs from:\n" + row
    for preset in LIBRARY["protocols"]:
        line = "- `%s`: %s" % (preset["name"], preset["source"])
        assert line in docs, "docs/protocols.md lacks the source of " + preset["name"]


def measure():
    """Every preset delivered on the sim board: (name, mode, target J, delivered J, emitted J)."""
    from concurrent.futures import ThreadPoolExecutor

    def run(name):
        preset = protocols.find(LIBRARY, name)
        report = scenario.run(*scenario.validate({
            "board": "sim", "protocol": name, "events": START,
            "until_s": round(4.0 + preset["time_s"] * 1.1 + 5.0, 1)}), chip=True)
        return (name, preset["mode"], preset["energy_j"], report["delivered_j"],
                report["emitted_j"])

    with ThreadPoolExecutor(2) as pool:  # each run is its own interpreter
        return list(pool.map(run, NAMES))


if __name__ == "__main__":  # the table for docs/protocols.md; --measure: what each preset achieves
    if sys.argv[1:] == ["--measure"]:
        for name, mode, target, delivered, emitted in measure():
            print("%-30s %-6s %9.3f J: delivered %9.3f J, emitted %9.4f J (%+.4f %%)"
                  % (name, mode, target, delivered, emitted, (emitted - target) / target * 100))
    else:
        print("\n".join(preset_rows()))
