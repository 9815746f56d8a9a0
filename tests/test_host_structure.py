"""host_tools' shape (issue 18): one module per `laserctl` subcommand, named after it, over one
shared device layer. Every module is a subcommand's (its docstring begins "`laserctl NAME") or says
its shared role ("Shared: ..."); one place imports the firmware's modules on the host, one builds
argv for the interpreter, one runs mpy-cross, one talks to the virtual panel."""

import ast
import importlib
import re

import pytest

from host_tools import cli, paths

HOST = paths.REPO / "host_tools"
SUBCOMMANDS = sorted(next(action.choices for action in cli.build_parser()._actions
                          if hasattr(action, "choices") and action.choices))
# The simulator's side runs on MicroPython in the device's image, not on the host.
MODULES = sorted(p for p in HOST.rglob("*.py") if "mpy" not in p.relative_to(HOST).parts)
FIRMWARE_MODULES = {p.stem for p in paths.FIRMWARE_LIB.glob("*.py")}


def _name(path):
    """host_tools/vdevice/pty.py -> ("vdevice", "pty"); host_tools/run.py -> ("run",)."""
    parts = path.relative_to(HOST).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _tree(path):
    return ast.parse(path.read_text(), str(path))


def _strings(path):
    """The string constants of a module's code, docstrings left out (they may name anything)."""
    tree = _tree(path)
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value,
                                                                  ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docs]


def _owner(path):
    """The subcommand a module belongs to (its name, or its package's), or None."""
    name = _name(path)
    return name[0] if name and name[0] in SUBCOMMANDS else None


def test_the_subcommands_are_the_ones_the_issue_names():
    assert set(SUBCOMMANDS) >= {"run", "console", "vdevice", "scenario", "report", "plot",
                                "deploy", "journal", "calibrate", "bench", "faults",
                                "thermistor", "board"}


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_runs_the_main_of_its_own_module(command):
    parser = next(action.choices[command] for action in cli.build_parser()._actions
                  if hasattr(action, "choices") and action.choices)
    if parser.get_default("func") is None:  # a group: board check, ...
        parser = next(iter(next(action.choices for action in parser._actions
                                if hasattr(action, "choices") and action.choices).values()))
    module = parser.get_default("func").module
    assert module.split(".")[0] == command
    assert callable(importlib.import_module("host_tools." + module).main)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(HOST)))
def test_every_module_is_a_subcommands_or_says_its_shared_role(path):
    doc = ast.get_docstring(_tree(path), clean=False)
    assert doc, "%s has no docstring" % path.name
    first = doc.splitlines()[0]
    owner = _owner(path)
    if owner is not None:
        assert first.startswith("`laserctl %s" % owner), (
            "%s belongs to `laserctl %s`: its docstring begins with it, not %r"
            % (path.relative_to(HOST), owner, first))
    else:
        assert first.startswith("Shared: "), (
            "%s is named after no laserctl subcommand (%s): its docstring's first line says its "
            "shared role, \"Shared: ...\", not %r" % (path.relative_to(HOST),
                                                     ", ".join(SUBCOMMANDS), first))


def test_the_old_names_are_gone():
    """laserctl console lived in serial_console.py while console.py was laserctl run."""
    for old in ("serial_console", "pty_device", "thermistor_check", "journal_export",
                "fault_injection"):
        assert not (HOST / (old + ".py")).exists()
    assert "`laserctl console" in (HOST / "console.py").read_text()
    assert "`laserctl run" in (HOST / "run.py").read_text()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(HOST)))
def test_only_paths_puts_the_firmware_on_sys_path_and_imports_it(path):
    """paths.firmware_module is the one way host code imports firmware/lib (which the checks,
    the journal's verification and the presets use, as the device does)."""
    if path == HOST / "paths.py":
        return
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr == "path" and \
                isinstance(node.value, ast.Name) and node.value.id == "sys":
            pytest.fail("%s:%d touches sys.path" % (path.name, node.lineno))
        if isinstance(node, ast.Attribute) and node.attr == "firmware_import_path":
            pytest.fail("%s:%d: paths.firmware_module(NAME), not firmware_import_path"
                        % (path.name, node.lineno))
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and not node.level else []
        for name in names:
            assert name.split(".")[0] not in FIRMWARE_MODULES, (
                "%s:%d imports the firmware's %s by name: paths.firmware_module(%r)"
                % (path.name, node.lineno, name, name))


def _using(predicate):
    return sorted(str(p.relative_to(HOST)) for p in MODULES if predicate(p))


def test_one_way_to_start_the_interpreter():
    """Its argv (-X heapsize=) and module path (MICROPYPATH) come from vdevice.command only."""
    assert _using(lambda p: any("MICROPYPATH" in s or s.startswith("heapsize=")
                                for s in _strings(p))) == ["vdevice/__init__.py"]


def test_one_mpy_cross_pipeline():
    assert _using(lambda p: "mpy_cross_executable" in p.read_text()) == ["manifest.py",
                                                                         "paths.py"]


def test_one_client_for_the_virtual_panel():
    assert _using(lambda p: any(isinstance(node, ast.Import) and "socket" in
                                [alias.name for alias in node.names]
                                for node in ast.walk(_tree(p)))) == ["virtual_panel.py"]


def test_one_reader_of_the_devices_json_lines():
    """A line a device printed is parsed by device_lines (never a strict decode, never a bare
    json.loads that a lone surrogate or a bad byte would break); the host's other json.loads
    read files, the world's datagrams and the probes' own result lines."""
    whole_line = re.compile(r"loads\((text\()?line\)")
    assert _using(lambda p: whole_line.search(p.read_text()) is not None) == ["device_lines.py"]
