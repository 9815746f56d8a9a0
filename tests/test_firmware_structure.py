"""The firmware's structure, read from its source (CPython, ast): no import cycle among its
modules; the controller's arming locks set through its own methods only; `micropython.const`
imported plainly, with a stand-in only on CPython's path; the hardware contract
(startup.HARDWARE) met by hw.Hardware and by every stand-in for it, and all the firmware asks of
its hardware object."""

import ast
import os
import subprocess
import sys

import startup  # firmware/lib (conftest)
from support import FakeHardware, load_board  # tests/firmware (conftest)

from host_tools import paths

FIRMWARE_FILES = sorted(paths.FIRMWARE_LIB.glob("*.py")) + sorted(paths.FIRMWARE.glob("*.py"))
CONTRACT = set(startup.HARDWARE) | set(startup.HARDWARE_ATTRIBUTES)


def _tree(path):
    return ast.parse(path.read_text(), str(path))


def _imports(path):
    """The modules `path` imports, at its top and inside its functions alike."""
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def _cycles(graph):
    """Every cycle of `graph` ({module: modules it imports}), one per strongly connected set of
    modules, as the path around it."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                cycles.append(_path_around(graph, sorted(members)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _path_around(graph, members):
    """A path from members[0] back to itself through `members` (they are strongly connected)."""
    start, inside = members[0], set(members)
    paths_from = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                return " -> ".join(paths_from[v] + [start])
            if w in inside and w not in paths_from:
                paths_from[w] = paths_from[v] + [w]
                queue.append(w)
    raise AssertionError("not a cycle: %s" % members)


def test_the_cycle_finder_finds_a_cycle_through_an_import_inside_a_function():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _imports(paths.FIRMWARE_LIB / "commands.py") >= {"service", "protocols"}  # lazily


def test_no_firmware_module_imports_another_that_imports_it_back():
    """Not even through an import inside a function (commands.py's of service.py): a cycle
    makes a module's import order decide what exists when, and ties the boot to the loop."""
    modules = {path.stem for path in FIRMWARE_FILES}
    graph = {path.stem: (_imports(path) & modules) - {path.stem} for path in FIRMWARE_FILES}
    assert _cycles(graph) == []


def test_only_the_controller_sets_its_arming_locks():
    """controller.locked and controller.blocked are set through Controller.booted, lock,
    block and unblock (and take_over, after a failed tick): assigned nowhere else. The
    supervisor keeps its own lock, as its own attribute."""
    found = []
    for path in FIRMWARE_FILES:
        for node in ast.walk(_tree(path)):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and t.attr in ("locked", "blocked"):
                        own = isinstance(t.value, ast.Name) and t.value.id == "self" and \
                            path.name in ("controller.py", "supervisor.py")
                        if not own:
                            found.append("%s:%d" % (path.name, t.lineno))
    assert found == []


def test_micropython_const_is_imported_plainly_and_stood_in_for_on_cpython_only():
    """`from micropython import const`, never behind a try: on CPython the stand-in in
    host_tools/cpython_stubs answers it, put on the path by the tests and the host tools;
    MicroPython's own module is built in and wins over any file of that name anyway."""
    for path in FIRMWARE_FILES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Try):
                inner = {n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom)}
                assert "micropython" not in inner, path.name
    assert not (paths.FIRMWARE_LIB / "micropython.py").exists()  # frozen into the image, else
    import micropython

    assert micropython.__file__ == str(paths.CPYTHON_STUBS / "micropython.py")
    assert micropython.const(7) == 7
    # A host tool's process: firmware_import_path() alone makes the firmware importable.
    code = ("from host_tools import paths; paths.firmware_import_path(); import controller, "
            "micropython; print(controller.FAULT, micropython.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["6", str(paths.CPYTHON_STUBS / "micropython.py")]
    # On MicroPython, even with the stand-in's folder on its path: the built-in module.
    env = dict(os.environ, MICROPYPATH=str(paths.CPYTHON_STUBS))
    out = subprocess.run([paths.micropython_executable(), "-c",
                          "import micropython; print(hasattr(micropython, 'mem_info'))"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def _class(path, name):
    return next(node for node in _tree(path).body
                if isinstance(node, ast.ClassDef) and node.name == name)


def _public_methods(cls):
    return {node.name for node in cls.body
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}


def _public_attributes(cls):
    """What the class sets that is not a method: class attributes and self.NAME = ..."""
    names = set()
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and \
                        t.value.id == "self":
                    names.add(t.attr)
                elif isinstance(t, ast.Name) and node in cls.body:
                    names.add(t.id)
    return {name for name in names if not name.startswith("_")}


def test_the_hardware_module_offers_exactly_the_contract():
    hardware = _class(paths.FIRMWARE_LIB / "hw.py", "Hardware")
    assert _public_methods(hardware) == set(startup.HARDWARE)
    assert _public_attributes(hardware) == set(startup.HARDWARE_ATTRIBUTES)


def test_the_benchs_stand_in_offers_exactly_the_contract():
    stand_in = _class(paths.SIM_MPY / "firmware_alone.py", "_Hardware")
    assert _public_methods(stand_in) == set(startup.HARDWARE)
    assert set(startup.HARDWARE_ATTRIBUTES) <= _public_attributes(stand_in)


# The test stand-ins' own controls, beside the contract: what the tests call to play the world.
_FAKE_CONTROLS = {"press_footswitch", "reboot"}
_PLANT_CONTROLS = _FAKE_CONTROLS | {"sync", "enable_high", "light_w", "lit", "heat_w_at",
                                    "set_light_factor", "freeze_sensor", "stick_enable"}


def _callables(obj):
    return {name for name in dir(obj) if not name.startswith("_") and callable(getattr(obj, name))}


def test_the_tests_stand_ins_offer_the_contract_and_only_their_own_controls_beside():
    from plant import Plant

    board = load_board()
    for fake, controls in ((FakeHardware(board=board), _FAKE_CONTROLS),
                           (Plant(board), _PLANT_CONTROLS)):
        assert _callables(fake) == set(startup.HARDWARE) | controls, type(fake).__name__
        for name in startup.HARDWARE_ATTRIBUTES:
            assert hasattr(fake, name) and not callable(getattr(fake, name)), name


def _hardware_uses(path):
    """The names the module reads on its hardware object: hw.NAME, hardware.NAME, x.hw.NAME
    and getattr(hw, "NAME", ...) (a module that imports `hw`, the hardware module, means the
    module by that name)."""
    tree = _tree(path)
    module = "hw" in _imports(path)

    def is_hardware(node):
        if isinstance(node, ast.Name):
            return node.id == "hardware" or (node.id == "hw" and not module)
        return isinstance(node, ast.Attribute) and node.attr == "hw"

    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_hardware(node.value):
            used.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "getattr" and is_hardware(node.args[0]):
            used.add(node.args[1].value)
    return used


def test_the_firmware_asks_of_its_hardware_object_just_the_contract():
    used = set()
    for path in FIRMWARE_FILES:
        if path.name != "hw.py":
            used |= _hardware_uses(path)
    assert used == CONTRACT, (sorted(used - CONTRACT), sorted(CONTRACT - used))
