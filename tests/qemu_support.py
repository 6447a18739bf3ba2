"""Helpers for tests that start a real QEMU, and the tables of machines they run over.

Which machines there are, their QEMU binaries, families and versions, the names golden cases
start with, and which machines QEMU hands a device tree (`dumpdtb`) all come from the
shipped schemas (`load_library()`), so that a new machine family or version needs schemas
and cases, not test Python.
"""

from __future__ import annotations

import functools
import os
import shutil

import pytest

from compiler.lang import model
from compiler.lang.resolve import load_library

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


# The QEMU releases the tests run: the system's (Debian 12's 7.2) and 10.0, unpacked beside it
# by `tools/fetch-qemu` (run-tests exports where).
SYSTEM_RELEASE = "7.2"
RELEASE_ROOTS = {"10.0": "MSCHEMA_QEMU_10_0"}  # release → the variable naming its folder
RELEASES = (SYSTEM_RELEASE, *RELEASE_ROOTS)


def release_argv(name: str, release: str) -> list[str]:
    """How to start binary `name` (`qemu-system-x86_64`) of QEMU `release`: its path (for an
    unpacked release, the wrapper that gives it its own firmware and modules). Skips (fails
    on CI) when that release is not here."""
    if release == SYSTEM_RELEASE:
        return [require_binary(name)]
    root = os.environ.get(RELEASE_ROOTS[release], "")
    binary = os.path.join(root, "bin", name)
    if root and os.access(binary, os.X_OK):
        return [binary]
    message = (f"QEMU {release}'s {name} not found (${RELEASE_ROOTS[release]}={root!r}); "
               "`tools/fetch-qemu` unpacks it and ./run-tests sets the variable")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def library() -> model.Library:
    """The shipped schemas and stdlib, loaded once per test session."""
    return load_library()


def schema(name: str) -> model.MachineSchema:
    """A machine by name, alias or family (its newest version), or by QEMU machine type."""
    found = library().machine(name) or next(
        (m for m in library().machines.values() if m.qemu_machine == name), None)
    assert found is not None, f"no shipped machine is called `{name}`"
    return found


def binary_of(name: str) -> str:
    """The QEMU binary (its name) of machine `name`, as its schema says."""
    return schema(name).binary


# Shipped machine versions a later QEMU release no longer has (docs/releases.md): a test that
# would start one under that release checks that QEMU refuses it instead.
GONE_IN_RELEASE: dict[str, frozenset[str]] = {
    "10.0": frozenset({"pseries-2.7", "pseries-2.8", "pseries-2.9", "pseries-2.10",
                       "pseries-2.11", "pseries-2.12"}),
}


def gone_in(release: str, machine: str) -> bool:
    return schema(machine).name in GONE_IN_RELEASE.get(release, frozenset())


def releases_of(name: str) -> tuple[str, ...]:
    """The releases the tests run that have machine `name`: from its schema's `since` on,
    but for a release that dropped it (`GONE_IN_RELEASE`: pseries-2.7 runs on 7.2 only)."""
    return tuple(r for r in RELEASES if schema(name).runs_on(r) and not gone_in(r, name))


def release_of(name: str) -> str:
    """The oldest release here that has machine `name`: 7.2 for pc-q35-7.2, 10.0 for
    pc-q35-8.0 and newer (QEMU 7.2 has none of them)."""
    found = releases_of(name)
    assert found, f"no QEMU release the tests run has `{name}`"
    return found[0]


def machine_qemu(name: str) -> list[str]:
    """How to start the QEMU that runs machine `name`: its schema's binary, of the oldest
    release here that has the machine version (skips, or fails on CI, when it is missing)."""
    return release_argv(binary_of(name), release_of(name))


# What a QEMU release says when it lacks a machine type (qemu/vl.c, both releases)
UNSUPPORTED_MACHINE = "unsupported machine type"


def families() -> dict[str, tuple[str, ...]]:
    """family → its versions, newest first."""
    out: dict[str, list[model.MachineSchema]] = {}
    for m in library().machines.values():
        out.setdefault(m.family, []).append(m)
    return {family: tuple(sorted((m.name for m in versions), key=_version, reverse=True))
            for family, versions in sorted(out.items())}


def _version(name: str) -> tuple[int, ...]:
    """`pc-q35-7.2` → (7, 2)."""
    return tuple(int(p) for p in name.rsplit("-", 1)[-1].split(".") if p.isdigit())


def names_of(family: str) -> tuple[str, ...]:
    """Every name that means `family`'s newest machine: the family and its aliases."""
    newest = schema(family)
    return (family, *newest.aliases)


def case_family(case: str) -> str | None:
    """The family a golden case belongs to, from its name (`q35-full`, `pseries-minimal`):
    the longest family name or alias it starts with, followed by `-`."""
    starts = [(len(n), f) for f in families() for n in names_of(f) if case.startswith(f"{n}-")]
    return max(starts)[1] if starts else None


def machine_argv(args: list[str]) -> list[str]:
    """QEMU started with `args`: the binary (its path here) of the machine their `-machine`
    names, as its schema says, of the oldest release that has that machine version; skips
    the test when that binary is missing."""
    machine = args[args.index("-machine") + 1].split(",")[0]
    return [*machine_qemu(machine), *args]


def tcg_options(name: str) -> tuple[str, ...]:
    """The machine options (`K=V`) a start of machine `name` under TCG needs besides its
    defaults, as its schema's `quirk tcg-options` says: pseries-2.7 to 2.11 turn HTM on,
    which only KVM runs. Tests add them wherever they start a bare version."""
    value = {q.name: q.value for q in schema(name).quirks}.get("tcg-options", "")
    return tuple(o for o in str(value).split(",") if o)


def has_dumpdtb(name: str) -> bool:
    """Does QEMU hand machine `name` a device tree (`-machine …,dumpdtb=FILE`)? Its schema's
    `quirk dumpdtb` says."""
    return {q.name: q.value for q in schema(name).quirks}.get("dumpdtb") is True
