"""The private libvirt daemon of the tests (tests/libvirt_support.py) is a real libvirt: it
defines a domain, assigns its addresses and gives its QEMU command line."""

from __future__ import annotations

import pytest
from libvirt_support import Daemon, VirshError
from lxml import etree

MINIMAL = """<domain type='qemu'>
  <name>mschema-daemon-check</name>
  <memory unit='KiB'>131072</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='user'><mac address='52:54:00:11:22:33'/><model type='rtl8139'/></interface>
  </devices>
</domain>
"""


def test_define_dumpxml_native(libvirtd: Daemon) -> None:
    with libvirtd.defined(MINIMAL) as xml:
        dom = etree.fromstring(xml.encode())
        # libvirt puts a conventional PCI NIC behind a pcie-pci-bridge it adds itself
        assert dom.find("devices/controller[@model='pcie-to-pci-bridge']") is not None
        assert dom.find("devices/interface/address").get("slot") == "0x01"
    argv = libvirtd.native_argv(MINIMAL)
    assert "-machine pc-q35-7.2" in argv and '"driver":"rtl8139"' in argv
    assert "mschema-daemon-check" not in libvirtd.virsh("list", "--all", "--name")


def test_refusal_is_an_error(libvirtd: Daemon) -> None:
    with pytest.raises(VirshError, match="expected '>'"):
        libvirtd.define("<domain type='qemu'><name>x</name></domain")
