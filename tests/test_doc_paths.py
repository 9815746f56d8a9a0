"""Every path a doc or a comment quotes exists: every Markdown file (the README, docs/), the
Makefile, and the comments and docstrings of every Python file. A renamed module or a moved test
otherwise leaves the next engineer following a sign to nowhere.

A path is anything under one of the repository's own folders (`firmware/lib/app.py`,
`tests/scenarios/faults/`); `FILE.py::name` must also define `name` (a function, a class or an
assignment), and `support.Rig` (a module and one of its names, as the docs write them) must
define `Rig`. Not checked: patterns (`tests/scenarios/**/*.json`), the placeholder NAME
(`boards/NAME.json`: the file an engineer writes), what the build writes (`build/`), and the few
paths below that name files of other trees."""

import ast
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_FOLDERS = ("firmware", "host_tools", "tests", "docs", "boards", "image", ".ci")
_PATH = re.compile(r"(?<![\w/.-])((?:%s)/[\w./-]*\w)(?:::(\w+))?"
                   % "|".join(re.escape(f) for f in _FOLDERS))
# Paths that name files outside this repository, or one an engineer makes: each says why.
ELSEWHERE = {
    "tests/perf_bench/misc_pystone.py": "MicroPython's own benchmark, in the source `make chip` "
                                        "fetches (host_tools/bench_chip.py)",
    "boards/sdkconfig.base": "in MicroPython's ports/esp32, which the image build includes",
    "boards/ESP32_GENERIC": "in MicroPython's ports/esp32, the board the image's board file "
                            "starts from (image/esp32/LASER_ESP32/mpconfigboard.cmake)",
}
_PLACEHOLDER = re.compile(r"(^|/)NAME(\.|/|$)")


def _python_prose(path):
    """The comments and docstrings of a Python file."""
    source = path.read_text()
    parts = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


def _prose():
    """(file, its text that quotes paths) for every doc and every Python file of the repo."""
    texts = [(REPO / "README.md", (REPO / "README.md").read_text()),
             (REPO / "Makefile", (REPO / "Makefile").read_text())]
    for folder in _FOLDERS:
        for path in sorted((REPO / folder).rglob("*.md")):
            texts.append((path, path.read_text()))
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                texts.append((path, _python_prose(path)))
    return texts


def _defines(path, name):
    return re.search(r"^\s*(?:async\s+def|def|class)\s+%s\b|^%s\s*[:=]" % (name, name),
                     path.read_text(), re.MULTILINE) is not None


def dangling(text):
    """The quoted paths in `text` that do not exist (or lack the name they point at)."""
    found = []
    for m in _PATH.finditer(text):
        quoted, name = m.group(1).rstrip("."), m.group(2)
        if quoted in ELSEWHERE or _PLACEHOLDER.search(quoted) or "*" in quoted:
            continue
        path = REPO / quoted
        module, _, attr = quoted.rpartition(".")
        if not path.exists() and attr[:1].isupper() and (REPO / (module + ".py")).is_file():
            # support.Rig: a module and a name in it
            if not _defines(REPO / (module + ".py"), attr):
                found.append(quoted)
        elif not path.exists() or (name and path.suffix == ".py" and not _defines(path, name)):
            found.append(quoted + ("::" + name if name else ""))
    return found


def test_every_path_a_doc_or_a_comment_quotes_exists():
    missing = {}
    for path, text in _prose():
        for quoted in dangling(text):
            missing.setdefault(str(path.relative_to(REPO)), []).append(quoted)
    assert missing == {}


def test_the_check_sees_a_path_that_is_not_there():
    assert dangling("see `firmware/lib/app.py` and tests/test_doc_paths.py") == []
    assert dangling("see firmware/lib/gone.py, `docs/nowhere.md`.") == [
        "firmware/lib/gone.py", "docs/nowhere.md"]
    assert dangling("`tests/test_doc_paths.py::test_the_check_sees_a_path_that_is_not_there`") \
        == []
    assert dangling("tests/test_doc_paths.py::test_gone") == ["tests/test_doc_paths.py::test_gone"]
    assert dangling("tests/firmware/support.Rig, tests/firmware/support.Gone") == [
        "tests/firmware/support.Gone"]
    assert dangling("boards/NAME.json, tests/scenarios/**/*.json") == []
    # Names in capitals are checked like any other: only NAME is a placeholder.
    assert dangling("image/esp32/LASER_ESP32, image/esp32/LASER_ESP33") == [
        "image/esp32/LASER_ESP33"]


def test_a_name_is_found_however_the_module_defines_it(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("async def serve():\n    pass\nLIMIT: int = 3\nclass Rig:\n    pass\n")
    for name in ("serve", "LIMIT", "Rig"):
        assert _defines(module, name), name
    assert not _defines(module, "gone")


def test_every_path_kept_aside_is_really_not_in_this_repository():
    for quoted in ELSEWHERE:
        assert not (REPO / quoted).exists(), quoted


def test_the_readme_is_short_and_starts_with_the_two_commands():
    """What a newcomer needs first (issue 18): at most 150 lines, opening with `make run` and
    `make test`; the rest is linked from it."""
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)
    first_block = lines[lines.index("```sh") + 1:lines.index("```")]
    assert [line.split()[:2] for line in first_block] == [["make", "run"], ["make", "test"]]
    assert lines.index("```sh") <= 2  # under the title
