"""Shared pytest options.

`--update-goldens` makes golden-file tests (e.g. `tests/lang/bad/*.err`, `*.json`) rewrite
their expected output from what the program prints instead of comparing; review the diff.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite golden files (.err, .json) from the actual output instead of comparing",
    )


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """mschema's cache (`$XDG_CACHE_HOME/mschema`) goes to a scratch directory for the whole
    run, for this process and every `mschema` it starts: tests never read or write the
    user's cache. (Tests that pass their own `env` set it themselves or run without one.)"""
    import os

    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
