"""Compile work grows linearly with the devices (issue 7): no pass of the allocator or of
the validation graph looks at every bus or device again for each new one. Counted, never
timed: the statements run in `build/allocate.py`, `build/place/` and `validate.py`, the
allocator's probes (`Bus.next_free`, each bus tried; `TakenAddresses.slot_taken`, each slot
tried) and the size of the
dependency graph, for n and 4n devices. The sizes cross the regimes of both machines: q35
ports, then pcie-pci-bridges past 192 ports; pseries PHBs every 32 PCI devices."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from unittest import mock

import pytest
from qemu_support import families, library, schema

from compiler import driver
from compiler.base.source import SourceFile
from compiler.build import allocate, tree, validate
from compiler.build.place import free, ids, ports, state, unique
from compiler.emit import blob
from compiler.lang import resolve

PAIRS = [(64, 256), (256, 1024)]
# every shipped machine family (tests/qemu_support.py) that can hold 1024 PCI devices: one
# whose placement adds ports or overflow bridges (q35, pc-i440fx), or that a `provide` rule
# gives another PCI bus from outside PCI (pseries' PHBs).
def grows(family: str) -> bool:
    m = schema(family)
    lib = library()
    return m.placement.port_device is not None or bool(m.placement.overflow) or any(
        not any(pl.bus == kind for pl in lib.devices[p.device].plugs)
        for kind, p in m.providers.items() if lib.buses[kind].address.notation == "pci")


MACHINES = tuple(f for f in families() if grows(f))
GROWTH = 4.5  # 4× the devices: at most this much more work (linear, with slack)


def spec_text(machine: str, n: int) -> str:
    """`n` devices: virtio disks and NICs alternating (one NIC in four an spapr-vlan on
    pseries), as `bench/run.py` generates them."""
    lines = [f'machine = "{machine}"', 'memory = "1G"', ""]
    for i in range(n):
        if i % 2 == 0:
            lines += ["[[disk]]", f'file = "d{i:04d}.raw"', ""]
        else:
            lines += ["[[nic]]", 'network = "user"']
            if machine == "pseries" and i % 8 == 1:
                lines.append('model = "spapr-vlan"')
            lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="module", autouse=True)
def library_loaded() -> None:
    resolve.load_library()  # parsing the shipped files is not the work counted here


def spec(tmp_path: Path, machine: str, n: int) -> Path:
    path = tmp_path / f"{machine}-{n}.toml"
    path.write_text(spec_text(machine, n), encoding="utf-8")
    return path


@contextmanager
def statements_in(files: set[str]) -> Iterator[list[int]]:
    """Count the statements run in `files` (a `sys.settrace` line counter)."""
    count = [0]

    def local(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if event == "line":
            count[0] += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        return local if frame.f_code.co_filename in files else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        yield count
    finally:
        sys.settrace(previous)


def statements(path: Path) -> int:
    files = {m.__file__ for m in (allocate, free, ids, ports, state, unique, validate)}
    with statements_in({f for f in files if f}) as count:
        driver.compile_input(path)
    return count[0]


def probes(path: Path) -> tuple[int, int]:
    with mock.patch.object(state.Bus, "next_free", autospec=True,
                           side_effect=state.Bus.next_free) as buses, \
            mock.patch.object(free.TakenAddresses, "slot_taken", autospec=True,
                              side_effect=free.TakenAddresses.slot_taken) as slots:
        driver.compile_input(path)
    return buses.call_count, slots.call_count


def graph_size(path: Path) -> int:
    machine = driver.compile_input(path)
    nowhere = SourceFile.from_text("-", "").span(0, 0)
    ctx = validate.Context(machine, resolve.load_library(), nowhere,
                           list(validate._placed(machine.root, None)))
    g = validate.dependency_graph(ctx)
    return int(g.number_of_nodes() + g.number_of_edges())


def devices(path: Path) -> int:
    return sum(1 for _ in tree.walk(driver.compile_input(path).root))


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize(("n", "n4"), PAIRS)
def test_statements_grow_linearly(tmp_path: Path, machine: str, n: int, n4: int) -> None:
    small, big = statements(spec(tmp_path, machine, n)), statements(spec(tmp_path, machine, n4))
    assert big <= GROWTH * small, f"{n} devices: {small} statements, {n4}: {big}"


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("n", [64, 256, 1024])
def test_allocator_probes_per_device_are_bounded(tmp_path: Path, machine: str, n: int) -> None:
    """Each device tries a bounded number of buses and slots, whatever came before it:
    the first bus of a kind with room, and the first free slot of a bus, are searched from
    where the last search ended. (The old scans tried 12 buses per device at 1024.)"""
    buses, slots = probes(spec(tmp_path, machine, n))
    assert buses <= 3 * n, f"{buses / n:.1f} buses tried per device"
    assert slots <= 3 * n, f"{slots / n:.1f} slots tried per device"


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize(("n", "n4"), PAIRS)
def test_validation_graph_grows_linearly(tmp_path: Path, machine: str, n: int, n4: int
                                         ) -> None:
    small, big = spec(tmp_path, machine, n), spec(tmp_path, machine, n4)
    g1, g4 = graph_size(small), graph_size(big)
    d1, d4 = devices(small), devices(big)
    assert g4 <= GROWTH * g1
    assert g4 <= 4 * d4, f"{g4} nodes and edges for {d4} devices"
    assert d4 <= GROWTH * d1


def without_indexes() -> Any:
    """The allocator with its indexes off: every scan looks at all buses and devices."""
    return mock.patch.object(state.Placed, "indexes_hold", lambda self: False)


@pytest.mark.parametrize("machine", MACHINES)
def test_the_indexes_change_nothing(tmp_path: Path, machine: str) -> None:
    path = spec(tmp_path, machine, 300)
    with without_indexes():
        slow = driver.compile_input(path)
    fast = driver.compile_input(path)
    assert fast == slow
    assert blob.blob(fast) == blob.blob(slow)


def test_the_counter_sees_a_quadratic_pass(tmp_path: Path) -> None:
    """Without its indexes, the allocator goes through every device for each port's
    `chassis`: the statement count shows it."""
    with without_indexes():
        small = statements(spec(tmp_path, "pc-q35", 32))
        big = statements(spec(tmp_path, "pc-q35", 128))
    assert big > GROWTH * small
