"""The vip backend's pure parts: announcement frames (checked against scapy), the address
notification parser and the schema. No privileges needed."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from halo_backend_vip.frames import garp_frame, icmpv6_checksum, mac_bytes, unsolicited_na_frame
from halo_backend_vip.netlink import RTM_DELADDR, RTM_NEWADDR, parse_address_messages
from halo_backend_vip.plugin import VipBackendConfig
from halo_core import plugins
from halo_core.config import ConfigError, load_text

MAC = "02:48:41:00:00:07"


@pytest.mark.parametrize("vip", ["192.0.2.100", "198.51.100.255"])
def test_garp_frame_is_keepalived_s_gratuitous_request(vip: str) -> None:
    data = garp_frame(MAC, IPv4Address(vip))
    assert len(data) == 60  # padded to the Ethernet minimum
    pkt = Ether(data)
    assert (pkt.src, pkt.dst, pkt.type) == (MAC, "ff:ff:ff:ff:ff:ff", 0x0806)
    arp = pkt[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 1)
    assert (arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (MAC, vip, "ff:ff:ff:ff:ff:ff", vip)
    reference = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=MAC, psrc=vip, hwdst="ff:ff:ff:ff:ff:ff", pdst=vip
    )
    assert data == bytes(reference).ljust(60, b"\0")


@pytest.mark.parametrize("vip", ["2001:db8::100", "fe80::1:2", "2001:db8:ffff::ffff"])
def test_unsolicited_na_frame(vip: str) -> None:
    data = unsolicited_na_frame(MAC, IPv6Address(vip))
    pkt = Ether(data)
    assert (pkt.src, pkt.dst, pkt.type) == (MAC, "33:33:00:00:00:01", 0x86DD)
    ip6 = pkt[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim, ip6.nh, ip6.plen) == (vip, "ff02::1", 255, 58, 32)
    na = pkt[ICMPv6ND_NA]
    assert (na.type, na.code, na.R, na.S, na.O, na.tgt) == (136, 0, 0, 0, 1, vip)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC
    # scapy recomputes the checksum when it is deleted: it must agree with ours.
    rebuilt = Ether(data)
    del rebuilt[ICMPv6ND_NA].cksum
    assert Ether(bytes(rebuilt))[ICMPv6ND_NA].cksum == na.cksum
    reference = (
        Ether(src=MAC, dst="33:33:00:00:00:01")
        / IPv6(src=vip, dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(tgt=vip, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=MAC)
    )
    assert data == bytes(reference)


def test_na_router_flag_and_checksum_verifies() -> None:
    data = unsolicited_na_frame(MAC, IPv6Address("2001:db8::1"), router=True)
    na = Ether(data)[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (1, 0, 1)
    # A correct checksum makes the sum over pseudo-header and message come out as zero.
    assert icmpv6_checksum(IPv6Address("2001:db8::1"), IPv6Address("ff02::1"), data[54:]) == 0


def test_mac_bytes() -> None:
    assert mac_bytes("02:48:41:00:00:07") == bytes.fromhex("024841000007")
    assert mac_bytes(b"\x01" * 6) == b"\x01" * 6
    with pytest.raises(ValueError):
        mac_bytes("02:48:41")


def _addr_msg(kind: int, family: int, index: int, addr: str, plen: int, proto: int | None) -> bytes:
    raw = socket.inet_pton(family, addr)
    attrs = b""
    for atype, value in [(1, raw), (2, raw)] if family == socket.AF_INET else [(1, raw)]:
        attrs += struct.pack("=HH", 4 + len(value), atype) + value
    attrs += struct.pack("=HH", 11, 3) + b"eth0:v\0" + b"\0"  # IFA_LABEL, padded to 4
    if proto is not None:
        attrs += struct.pack("=HHB3x", 5, 11, proto)
    body = struct.pack("=BBBBi", family, plen, 0x80, 0, index) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_parse_address_messages() -> None:
    data = (
        _addr_msg(RTM_DELADDR, socket.AF_INET, 2, "192.0.2.100", 24, 0xA1)
        + _addr_msg(RTM_NEWADDR, socket.AF_INET6, 3, "2001:db8::1", 64, None)
        + struct.pack("=IHHII", 20, 16, 0, 0, 0)
        + b"\0" * 4  # an RTM_NEWLINK: skipped
    )
    events = parse_address_messages(data)
    assert [(e.deleted, e.index, str(e.address), e.prefixlen, e.proto) for e in events] == [
        (True, 2, "192.0.2.100", 24, 0xA1),
        (False, 3, "2001:db8::1", 64, 0),
    ]
    assert parse_address_messages(data[:30]) == []  # truncated: nothing, no exception


def test_schema_defaults_and_keepalived_spellings() -> None:
    d = VipBackendConfig()
    assert (d.garp_master_delay, d.garp_master_repeat, d.garp_master_refresh) == (5.0, 5, 0.0)
    assert (d.garp_master_refresh_repeat, d.garp_interval, d.gna_interval) == (1, 0.0, 0.0)
    p = plugins.load()
    text = (
        "backends:\n"
        "  vip:\n"
        "    type: vip\n"
        "    vrrp_garp_master_delay: 2s\n"
        "    vrrp_garp_interval: 10ms\n"
        "    garp_master_refresh: 1m\n"
    )
    cfg = load_text(text, "t.yaml", p).model.backends["vip"].config
    assert (cfg.garp_master_delay, cfg.garp_interval, cfg.garp_master_refresh) == (2, 0.01, 60)
    with pytest.raises(ConfigError) as exc:
        load_text("backends:\n  vip: {type: vip, garp_interval: 2s}\n", "t.yaml", p)
    assert "garp_interval" in exc.value.lines[0]


def test_kernel_version_gate() -> None:
    from halo_backend_vip.runtime import marker_supported

    assert marker_supported("5.18.0") and marker_supported("6.1.0-18-amd64")
    assert not marker_supported("5.17.15") and not marker_supported("4.18.0-553.el8")
    assert not marker_supported("weird")


def test_plugin_module_does_not_import_pyroute2() -> None:
    probe = "import sys, halo_backend_vip.plugin; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
