"""Shared pytest options and fixtures.

`--update-goldens` makes golden-file tests (e.g. `tests/lang/bad/*.err`, `*.json`,
`tests/vm/*.argv`) rewrite their expected output from what the program prints instead of
comparing; review the diff. `corpus` is the one runner of the lang, spec and blob corpora
(tests/corpus_support.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from corpus_support import Runner, collected_keys
from libvirt_support import Daemon


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite golden files (.err, .json) from the actual output instead of comparing",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus(*modes, plain=False): the CLI runs a corpus test reads from the "
        "`corpus` fixture (tests/corpus_support.py), started before the tests run")


@pytest.fixture(scope="session")
def corpus(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """The one runner of the lang, spec and blob corpora: every run the collected tests
    announce with `@pytest.mark.corpus`, started at once in forked children."""
    runner = Runner(*collected_keys(request.session.items))
    yield runner
    runner.close()


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


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[Daemon]:
    """A private libvirtd for the whole test session (tests/libvirt_support.py), stopped at
    the end; skips without libvirt (fails under CI=true)."""
    daemon = Daemon.start()
    yield daemon
    daemon.stop()
