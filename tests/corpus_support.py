"""What the golden-file corpora (tests/lang, tests/spec) share: the diagnostic header, the
golden check with `--update-goldens`, and which runs the collected tests will ask for."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEADER = re.compile(r"^(?P<path>\S+):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning)"
                    r"\[(?P<code>E\d{4})\]: (?P<message>.*)$")
# The CLI runs in forked children of one warm process (tests/lang/lint_server.py): real
# processes with their own streams and exit codes, without Python's start-up for each case.
# MSCHEMA_CORPUS_FORK=0 runs every case as a plain `python -m compiler` instead.
USE_SERVER = hasattr(os, "fork") and os.environ.get("MSCHEMA_CORPUS_FORK", "1") != "0"
Key = tuple[Path, str]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def headers(text: str) -> list[re.Match[str]]:
    return [m for line in text.splitlines() if (m := HEADER.match(line))]


def check_golden(golden: Path, actual: str, update: bool) -> None:
    if update:
        golden.write_text(actual, encoding="utf-8")
        return
    assert golden.exists(), f"{rel(golden)} is missing: run pytest with --update-goldens"
    expected = golden.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {rel(golden)}"


def collected_keys(items: list[pytest.Item], test_file: str, param: str,
                   default: str) -> tuple[list[Key], list[Key]]:
    """The (case, `param`) runs that the collected tests of `test_file` will ask for: all of
    them, and those that must also run as a plain process (`test_same_as_plain_cli`)."""
    keys, plain = [], []
    for item in items:
        if item.path != Path(test_file):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        case, variant = params.get("case"), params.get(param, default)
        if isinstance(case, Path):
            keys.append((case, variant))
            if USE_SERVER and getattr(item, "originalname", "") == "test_same_as_plain_cli":
                plain.append((case, variant))
    return keys, plain
