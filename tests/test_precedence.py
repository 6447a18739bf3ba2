"""Precedence, written down and tested: user spec > rule-forced > schema default > stdlib
default; a conflict at equal strength is an error that names both places."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from compiler import driver
from compiler.base.diagnostics import CompileError
from compiler.emit import blob


def compile_toml(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    result: dict[str, Any] = json.loads(blob.blob(driver.compile_input(path)))
    return result


def device(b: dict[str, Any], ident: str) -> dict[str, Any]:
    def walk(devices: list[dict[str, Any]]) -> dict[str, Any] | None:
        for d in devices:
            if d["id"] == ident:
                return d
            for bus in d.get("buses", []):
                found = walk(bus["devices"])
                if found:
                    return found
        return None

    found = walk(b["devices"])
    assert found is not None, ident
    return found


def errors(tmp_path: Path, text: str) -> list[tuple[str, int, list[int]]]:
    """(code, line, lines of the secondary labels) of each diagnostic."""
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(CompileError) as exc:
        driver.compile_input(path)
    return [(d.code, d.span.line, [lb.span.line for lb in d.labels])
            for d in exc.value.diagnostics]


# ---- user spec beats everything below it ---------------------------------------------------
def test_user_interface_beats_the_schema_default(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n[[disk]]\nfile = "a.raw"\n'
                     'interface = "sata"\n')
    assert device(b, "disk0")["type"] == "ide-hd"  # the schema's default is virtio-blk-pci


def test_user_option_beats_the_schema_default(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n[options]\nhpet = false\n')
    assert b["machine"]["options"]["hpet"] is False
    with pytest.raises(AssertionError):
        device(b, "hpet")


def test_user_prop_beats_the_unique_rule(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n[[device]]\ntype = "pcie-root-port"\n'
                     'id = "mine"\nbus = "pcie.0"\naddr = "04.0"\nprops = { chassis = 9 }\n')
    assert device(b, "mine")["props"]["chassis"] == 9


def test_user_mac_beats_the_generated_one(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n[[nic]]\nmac = "52:54:00:aa:bb:cc"\n')
    assert device(b, "net0")["props"]["mac"] == "52:54:00:aa:bb:cc"


def test_user_hotplug_slots_beat_the_schema_spare_ports(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\nhotplug-slots = 3\n')
    ports = [d for d in device(b, "q35")["buses"][0]["devices"]
             if d["type"] == "pcie-root-port"]
    assert len(ports) == 3  # the schema keeps 1 spare by default


# ---- rules beat defaults ----------------------------------------------------------------------
def test_the_port_rule_forces_multifunction_over_the_stdlib_default(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n[[nic]]\n[[nic]]\n')
    # stdlib: `prop multifunction: bool = false`; packing ports forces it on function 0
    assert device(b, "rp0")["props"]["multifunction"] is True
    assert "multifunction" not in device(b, "rp1")["props"]


def test_the_unique_rule_fills_what_nobody_set(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n[[nic]]\n[[nic]]\n')
    assert [device(b, p)["props"]["chassis"] for p in ("rp0", "rp1", "rp2")] == [0, 1, 2]


# ---- the schema's defaults beat QEMU's (stdlib) ones -------------------------------------------
def test_schema_memory_default_is_recorded(tmp_path: Path) -> None:
    assert compile_toml(tmp_path, 'machine = "pc-q35"\n')["memory"] == {"size": 128 << 20}
    assert compile_toml(tmp_path, 'machine = "pseries"\n')["memory"] == {"size": 512 << 20}


def test_schema_instance_props_beat_stdlib_defaults(tmp_path: Path) -> None:
    b = compile_toml(tmp_path, 'machine = "pc-q35"\n')
    assert device(b, "eeprom3")["props"] == {"address": 0x53}


# ---- equal strength: an error naming both places ----------------------------------------
def test_two_spec_devices_at_one_address(tmp_path: Path) -> None:
    assert errors(tmp_path, 'machine = "pc-q35"\n'
                  '[[device]]\ntype = "virtio-rng-pci"\nbus = "pcie.0"\naddr = "05.0"\n'
                  '[[device]]\ntype = "virtio-rng-pci"\nbus = "pcie.0"\naddr = "05.0"\n'
                  ) == [("E0502", 6, [2])]


def test_two_spec_nics_with_one_mac(tmp_path: Path) -> None:
    [(code, line, labels)] = errors(tmp_path, 'machine = "pc-q35"\n'
                                    '[[nic]]\nmac = "52:54:00:00:00:01"\n'
                                    '[[nic]]\nmac = "52:54:00:00:00:01"\n')
    assert (code, line) == ("E1107", 5) and labels == [3]


def test_two_spec_devices_with_one_chassis(tmp_path: Path) -> None:
    [(code, line, labels)] = errors(
        tmp_path, 'machine = "pc-q35"\n'
        '[[device]]\ntype = "pcie-root-port"\nbus = "pcie.0"\naddr = "04.0"\n'
        'props = { chassis = 7 }\n'
        '[[device]]\ntype = "pcie-root-port"\nbus = "pcie.0"\naddr = "05.0"\n'
        'props = { chassis = 7 }\n')
    assert (code, line, labels) == ("E1105", 11, [6])  # both `props` values


def test_spec_address_against_a_machine_device(tmp_path: Path) -> None:
    [(code, line, labels)] = errors(tmp_path, 'machine = "pc-q35"\n[[device]]\n'
                                    'type = "virtio-rng-pci"\nbus = "pcie.0"\naddr = "1f.0"\n')
    assert (code, line) == ("E0502", 2) and len(labels) == 1  # the schema's `lpc` line
