"""The ESP32 image (host_tools/image.py, image/esp32/LASER_ESP32, docs/flashing.md), checked as far
as a machine without a container runtime can: the board definition is one MicroPython's ESP32
port takes (its Makefile, its manifest tool, its sdkconfig files), its manifest freezes the
firmware and the image's identity, `make image` runs the command docs/flashing.md shows and stops
with a clear message when neither docker nor podman can run, and the identity is what the host
computes from the checkout."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from host_tools import chip, image, manifest, paths

DOC = paths.REPO / "docs" / "flashing.md"
FILES = ("board.json", "manifest.py", "mpconfigboard.cmake", "mpconfigboard.h", "sdkconfig.board")


@pytest.fixture(scope="module")
def source():
    """The MicroPython v1.28.0 tree and micropython-lib, as the chip build unpacked them (make test
    builds the chip interpreter first; offline, MICROPYTHON_SRC and MICROPYTHON_LIB_SRC)."""
    tree = chip.source_tree("MICROPYTHON_SRC", chip.MICROPYTHON_URL, "py/mpconfig.h",
                            chip.CHIP_DIR / "src" / "micropython")
    lib = chip.source_tree("MICROPYTHON_LIB_SRC", chip.MICROPYTHON_LIB_URL, "python-stdlib",
                           chip.CHIP_DIR / "src" / "micropython-lib")
    return tree, lib


def _manifest_tool(source):
    """MicroPython's own manifest tool (what makemanifest.py runs during the port's build), set
    up for the ESP32 board: (the manifestfile module, a ManifestFile in freeze mode)."""
    tree, lib = source
    sys.path.insert(0, str(tree / "tools"))
    try:
        import manifestfile
    finally:
        sys.path.remove(str(tree / "tools"))
    return manifestfile, manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
        "MPY_DIR": str(tree), "MPY_LIB_DIR": str(lib), "PORT_DIR": str(tree / "ports" / "esp32"),
        "BOARD_DIR": str(image.BOARD_DIR)})


def _frozen(source, identity_dir):
    """The modules the ESP32 image freezes, by MicroPython's own manifest tool."""
    _, found = _manifest_tool(source)
    os.environ[image.IDENTITY_ENV] = str(identity_dir)
    try:
        found.execute(str(image.BOARD_DIR / "manifest.py"))
    finally:
        del os.environ[image.IDENTITY_ENV]
    return [(r.target_path, r.full_path) for r in found.files()]


def test_the_board_definition_is_one_the_esp32_port_takes(source):
    tree, _ = source
    port = tree / "ports" / "esp32"
    for name in FILES:
        assert (image.BOARD_DIR / name).is_file(), name
    cmake = (image.BOARD_DIR / "mpconfigboard.cmake").read_text()
    assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in cmake
    defaults = re.search(r"set\(SDKCONFIG_DEFAULTS\s+([^)]*)\)", cmake).group(1).split()
    assert defaults == ["boards/sdkconfig.base", "${MICROPY_BOARD_DIR}/sdkconfig.board"]
    for fragment in defaults:  # CMakeLists.txt reads them relative to the port's folder
        path = fragment.replace("${MICROPY_BOARD_DIR}", str(image.BOARD_DIR))
        assert (port / path).is_file(), fragment
    assert "CONFIG_BT_ENABLED=n" in (image.BOARD_DIR / "sdkconfig.board").read_text()
    header = (image.BOARD_DIR / "mpconfigboard.h").read_text()
    assert "#define MICROPY_PY_BLUETOOTH (0)" in header
    assert "#define MICROPY_HW_MCU_NAME \"ESP32\"" in header
    described = json.loads((image.BOARD_DIR / "board.json").read_text())
    assert described["mcu"] == "esp32"
    assert int(described["deploy_options"]["flash_offset"], 16) == image.FLASH_OFFSET
    # The port's Makefile takes a board folder outside its tree; its name is the BOARD.
    dry = subprocess.run(["make", "-n", "-C", str(port), "BOARD_DIR=%s" % image.BOARD_DIR,
                          "BUILD=/tmp/unused"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert 'idf.py -D MICROPY_BOARD=LASER_ESP32 -D MICROPY_BOARD_DIR="%s"' % image.BOARD_DIR \
        in dry.stdout


def test_the_image_freezes_the_port_the_firmware_and_its_identity(source, tmp_path):
    identity = image.write_identity(tmp_path)
    frozen = _frozen(source, tmp_path)
    names = [name for name, _ in frozen]
    assert len(names) == len(set(names)), "two frozen modules of one name"
    assert "_boot.py" in names  # the port's: it mounts the filesystem
    assert "asyncio/core.py" in names
    firmware = {name: path for name, path in frozen if path.startswith(str(paths.FIRMWARE_LIB))}
    assert sorted(firmware) == [name for name, _ in image.frozen_modules()]
    assert dict(frozen)["image_id.py"] == str(tmp_path / "image_id.py")
    text = (tmp_path / "image_id.py").read_text()
    assert "VERSION = %r" % manifest.firmware_version() in text
    assert "BUILD_ID = %r" % identity["build_id"] in text
    assert identity["build_id"] == image.build_id()


def test_without_its_identity_the_image_is_not_built(source):
    os.environ.pop(image.IDENTITY_ENV, None)
    manifestfile, found = _manifest_tool(source)
    with pytest.raises(manifestfile.ManifestFileError, match="LASER_IMAGE_ID_DIR is not set"):
        found.execute(str(image.BOARD_DIR / "manifest.py"))


def test_the_idf_version_is_the_one_the_micropython_source_recommends(source):
    tree, _ = source
    readme = (tree / "ports" / "esp32" / "README.md").read_text()
    recommended = re.search(r"recommended version of ESP-IDF for MicroPython is (v[\d.]+)\.",
                            readme).group(1)
    assert recommended == image.IDF_VERSION
    assert "espressif/idf:" + recommended == image.CONTAINER


def test_the_container_command_is_the_one_docs_flashing_shows():
    shown = image.shell_line(image.container_argv("docker", "$PWD", "$(id -u):$(id -g)"))
    assert shown in re.sub(r" \\\n\s*", " ", DOC.read_text())  # continued lines joined
    argv = image.container_argv("podman", "/r", "1:1")
    assert argv[:4] == ["podman", "run", "--rm", "--userns=keep-id"] and "-u" not in argv


def test_the_build_id_names_the_frozen_modules_bytes(tmp_path, monkeypatch):
    built = image.build_id()
    assert re.fullmatch(r"[0-9a-f]{16}", built)
    copy = tmp_path / "lib"
    shutil.copytree(paths.FIRMWARE_LIB, copy)
    monkeypatch.setattr(paths, "FIRMWARE_LIB", copy)
    assert image.build_id() == built
    with open(copy / "dose.py", "a") as f:
        f.write("\n")
    assert image.build_id() != built


def test_the_chip_interpreter_carries_the_checkouts_identity():
    out = subprocess.run([paths.chip_executable(), "-c", "import image_id; "
                          "print(image_id.VERSION, image_id.BUILD_ID, image_id.MICROPYTHON)"],
                         capture_output=True, text=True, env={"MICROPYPATH": ".frozen"},
                         timeout=30).stdout.split()
    assert out == [manifest.firmware_version(), image.build_id(), chip.MICROPYTHON_VERSION], \
        "build/chip/micropython is not this checkout's: run make chip"


def _make_image(tmp_path, docker=None):
    """`make image` with PATH holding only a fake docker (or nothing): no real container runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    if docker is not None:
        (bin_dir / "docker").write_text("#!/bin/sh\n" + docker)
        (bin_dir / "docker").chmod(0o755)
    env = dict(os.environ, PATH=str(bin_dir))
    return subprocess.run([shutil.which("make"), "-s", "image"], cwd=paths.REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_make_image_says_why_when_no_container_can_run(tmp_path):
    result = _make_image(tmp_path)
    assert result.returncode != 0
    assert "make image: neither docker nor podman can run containers here (docker: not " \
        "installed; podman: not installed). The ESP32 image is built with ESP-IDF v5.5.1 inside " \
        "Espressif's container espressif/idf:v5.5.1" in result.stderr
    daemon = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the " \
        "docker daemon running?"
    result = _make_image(tmp_path / "2", 'echo "%s" >&2\nexit 1\n' % daemon)
    assert result.returncode != 0
    assert "(docker: `docker info` failed: %s; podman: not installed)" % daemon in result.stderr


def test_the_build_tree_is_a_copy_with_micropython_lib_inside(source, tmp_path):
    into = image.prepare_tree(tmp_path / "micropython")
    assert (into / "ports" / "esp32" / "Makefile").is_file()
    assert (into / "lib" / "micropython-lib" / "README.md").is_file()  # what the port checks
    (into / "marker").write_text("kept")
    assert image.prepare_tree(tmp_path / "micropython") == into
    assert (into / "marker").exists()  # the same source: not copied again
