"""The firmware's logic tests (tests/firmware) again, on both real MicroPython interpreters: the
chip interpreter (`make chip`: 32-bit, single floats, 31-bit small ints), running the firmware
frozen into it as the ESP32 image does, and the 64-bit unix port of the virtual device, loading it
from firmware/lib."""

import ast
import subprocess
from pathlib import Path

import pytest
from micropython_runs import INTERPRETERS, assert_all_pass

from host_tools import paths

TESTS = Path(__file__).resolve().parent / "firmware"
MODULES = sorted(p.stem for p in TESTS.glob("test_*.py"))


@pytest.mark.parametrize("interpreter", INTERPRETERS)
@pytest.mark.parametrize("module", MODULES)
def test_logic_tests_pass_on_micropython(module, interpreter):
    assert_all_pass(interpreter, TESTS, module)


def test_exactly_one_firmware_module_imports_machine():
    importers = []
    for path in sorted(paths.FIRMWARE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if "machine" in names or "umachine" in names:
                importers.append(path.relative_to(paths.FIRMWARE).as_posix())
    assert importers == ["lib/hw.py"]


def test_the_firmware_writes_the_serial_port_only_through_sys_stdout():
    """print() is written by the interpreter in C, past sys.stdout: the virtual device's UART
    (host_tools/vdevice/mpy/repl_uart.py) would not charge it the time the chip's UART takes,
    and in the loop it would wait for the UART. Lines go out through hw.Hardware.write_serial
    (the loop's Outbox) or link.send_line (where no loop runs), nowhere else."""
    printers, writers = [], []
    for path in sorted(paths.FIRMWARE.rglob("*.py")):
        name = path.relative_to(paths.FIRMWARE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == "print":
                printers.append(name)
            if isinstance(node, ast.Attribute) and node.attr == "stdout":
                writers.append(name)
    assert printers == []
    assert sorted(set(writers)) == ["lib/hw.py", "lib/link.py"]


def test_mpy_cross_compiles_every_firmware_file(tmp_path):
    sources = sorted(paths.FIRMWARE.rglob("*.py"))
    assert len(sources) >= 10
    mpy_cross = Path(paths.micropython_executable()).with_name("mpy-cross")
    for source in sources:
        out = tmp_path / (source.stem + ".mpy")
        proc = subprocess.run([str(mpy_cross), "-o", str(out), str(source)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, "%s: %s" % (source, proc.stderr)
        assert out.read_bytes()[:1] == b"M"  # the .mpy header
