"""Shared: stand-ins for MicroPython's built-in modules, for the firmware's modules run on CPython
(the tests, and the host tools that check boards and treatments with the firmware's own code).

This folder goes on CPython's sys.path only (paths.firmware_import_path(), tests/conftest.py):
MicroPython has the real modules built in, and nothing here is frozen or deployed.
"""
