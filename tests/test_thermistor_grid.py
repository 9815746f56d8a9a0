"""The thermistor's lookup grid is built once per board and read by the board check, the thermal
monitor and the supervisor (thermistor.shared). Sharing it is sound only if nothing can change
it: this checks the firmware's source for any code that could. (tests/firmware/test_thermistor.py
checks the sharing itself, and that a run leaves the grid as the board's numbers give it.)"""

import ast

from host_tools import paths

GRID = "_grid_mc"


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _mentions_grid(node):
    return any(isinstance(n, ast.Attribute) and n.attr == GRID for n in ast.walk(node))


_MUTATORS = ("append", "extend", "insert", "remove", "pop", "reverse", "byteswap", "frombytes",
             "fromlist", "__setitem__", "__delitem__")


def _may_write(n):
    store = (ast.Store, ast.Del)
    return ((isinstance(n, ast.Subscript) and isinstance(n.ctx, store))
            or isinstance(n, ast.AugAssign)
            or (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr in _MUTATORS)
            or (isinstance(n, ast.Attribute) and n.attr == GRID and isinstance(n.ctx, store)))


def _writes(function):
    """The lines in `function` that store into something by index or slice, delete from it,
    change it in place (+=), call a method that may (append, extend, ...), or store the grid."""
    return [n.lineno for n in ast.walk(function) if _may_write(n)]


def test_only_the_thermistors_constructor_writes_its_grid():
    sources = sorted(paths.FIRMWARE.rglob("*.py"))
    assert len(sources) > 10
    elsewhere = [p.relative_to(paths.REPO).as_posix() for p in sources
                 if p.name != "thermistor.py" and GRID in p.read_text()]
    assert elsewhere == [], "only thermistor.py may touch the grid: %s" % elsewhere
    tree = ast.parse((paths.FIRMWARE_LIB / "thermistor.py").read_text())
    readers = []
    for function in _functions(tree):
        if not _mentions_grid(function):
            continue
        if function.name == "__init__":
            continue  # Thermistor's constructor: it builds the grid, once
        readers.append(function.name)
        assert _writes(function) == [], "%s may change the grid (lines %s)" % (
            function.name, _writes(function))
    assert sorted(readers) == ["monotonic", "span_mc", "temp_mc"], readers
