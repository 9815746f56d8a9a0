"""make test's scheduling over the cores (tests/conftest.py): each test is its own unit of work,
but the tests of a module with a module-scoped fixture stay together on one worker, so that the
fixture (the exhaustive search, the bench) runs once."""

import conftest


def test_a_module_scoped_fixture_keeps_its_module_together(tmp_path):
    together = tmp_path / "test_together.py"
    together.write_text('import pytest\n\n@pytest.fixture(scope="module")\ndef run():\n'
                        '    return 1\n')
    apart = tmp_path / "test_apart.py"
    apart.write_text('# not scope="module": a comment\nimport pytest\n\n'
                     '@pytest.fixture(scope="function")\ndef run():\n'
                     '    return "scope=\\"module\\""\n')
    assert conftest._shares_a_module_fixture(str(together))
    assert not conftest._shares_a_module_fixture(str(apart))
    assert not conftest._shares_a_module_fixture(str(tmp_path / "data.json"))


def test_the_searches_and_the_bench_run_their_fixture_once():
    for module in ("tests/test_exhaustive.py", "tests/test_bench.py"):
        assert conftest._shares_a_module_fixture(module), module
