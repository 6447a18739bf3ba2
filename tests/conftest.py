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
