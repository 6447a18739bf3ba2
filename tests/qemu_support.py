"""Helpers for tests that start a real QEMU."""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL_HINT = (
    "install QEMU and dtc, e.g. "
    "`apt-get install qemu-system-x86 qemu-system-ppc device-tree-compiler`"
)


def require_binary(name: str) -> str:
    """The path of executable ``name``; skip the test if it is missing.

    On CI (``CI=true``) a missing binary fails the test instead, so that a
    broken CI image cannot silently skip the QEMU tests.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} not found on PATH; {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
