"""Claim answers (halo_backend_vip.claims): which frames claim an address, the marked
answers (checked against scapy: to hosts they are ordinary announcements), and when the
guard answers. No privileges needed: frames are handed to the guard directly."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRPv3

from halo_backend_vip.announce import Port
from halo_backend_vip.claims import (
    ANSWER_GAP,
    HIGHER_FOR,
    Advert,
    Claim,
    ClaimGuard,
    answer_frame,
    parse_advert,
    parse_claim,
)
from halo_backend_vip.frames import garp_frame, mac_bytes, unsolicited_na_frame
from halo_core.schema import IPAddress
from halo_tool_lab.clock import FakeClock

OURS = mac_bytes("02:48:41:00:00:01")
THEIRS = mac_bytes("02:48:41:00:00:02")
VIP4 = IPv4Address("192.0.2.100")
VIP6 = IPv6Address("2001:db8::100")


def test_announcements_and_arp_replies_are_claims() -> None:
    assert parse_claim(garp_frame(THEIRS, VIP4)) == Claim(VIP4, THEIRS)
    reply = Ether(src=THEIRS, dst=OURS) / ARP(
        op=2, hwsrc=THEIRS, psrc=str(VIP4), hwdst=OURS, pdst="192.0.2.11"
    )
    assert parse_claim(bytes(reply)) == Claim(VIP4, THEIRS)
    assert parse_claim(unsolicited_na_frame(THEIRS, VIP6)) == Claim(VIP6, THEIRS)


def test_what_claims_nothing() -> None:
    probe = Ether(src=THEIRS) / ARP(op=1, hwsrc=THEIRS, psrc="0.0.0.0", pdst=str(VIP4))
    assert parse_claim(bytes(probe)) is None  # RFC 5227 probe
    na = bytearray(unsolicited_na_frame(THEIRS, VIP6))
    na[21] = 64  # hop limit other than 255: receivers drop it
    assert parse_claim(bytes(na)) is None
    assert parse_claim(b"") is None
    assert parse_claim(garp_frame(THEIRS, VIP4)[:30]) is None


def test_parser_never_raises_on_mutated_frames() -> None:
    rng = random.Random(15)
    seeds = [garp_frame(THEIRS, VIP4), unsolicited_na_frame(THEIRS, VIP6)]
    seeds += [answer_frame(THEIRS, VIP4, 90), answer_frame(THEIRS, VIP6, 90)]
    for _ in range(20_000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        parse_claim(bytes(data[: rng.randint(0, len(data))]))


def test_answers_are_ordinary_announcements_with_a_mark() -> None:
    garp = answer_frame(OURS, VIP4, 100)
    pkt = Ether(garp)
    assert (pkt[ARP].op, pkt[ARP].psrc, pkt[ARP].pdst, pkt[ARP].hwsrc) == (
        1,
        str(VIP4),
        str(VIP4),
        "02:48:41:00:00:01",
    )
    assert len(garp) == 60 and garp[:42] == garp_frame(OURS, VIP4)[:42]
    assert parse_claim(garp) == Claim(VIP4, OURS, 100)
    na = Ether(answer_frame(OURS, VIP6, 100))
    assert na[IPv6].hlim == 255 and na[ICMPv6ND_NA].tgt == str(VIP6) and na[ICMPv6ND_NA].O == 1
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:48:41:00:00:01"
    sent = na[ICMPv6ND_NA].cksum
    del na[ICMPv6ND_NA].cksum
    assert Ether(bytes(na))[ICMPv6ND_NA].cksum == sent  # a valid checksum
    assert parse_claim(answer_frame(OURS, VIP6, 100)) == Claim(VIP6, OURS, 100)


# ---------------------------------------------------------------------------- the guard


class RecordingPort(Port):
    def __init__(self) -> None:
        super().__init__("lab0", 1, None)
        self.mac = OURS
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> str | None:
        self.sent.append(data)
        return None


@dataclass(frozen=True)
class HeldVip:
    dev: str
    ip: IPAddress


@dataclass(eq=False)
class Inst:
    name: str
    held: list[HeldVip]
    master: bool = True
    counters: Counter[str] = field(default_factory=Counter)


@pytest.fixture
async def guarded() -> tuple[ClaimGuard, RecordingPort, Inst, FakeClock]:
    clock = FakeClock()
    port = RecordingPort()
    guard = ClaimGuard(clock, {"lab0": port}.get)
    inst = Inst("VI_1", [HeldVip("lab0", VIP4), HeldVip("lab0", VIP6)])
    guard.note_master("VI_1", 100, 51)
    guard.update([inst])  # no interface lab0 here: not listening, logged, still guarding
    return guard, port, inst, clock


async def test_a_claim_is_answered_at_once_and_a_burst_once_more_at_its_end(
    guarded: tuple[ClaimGuard, RecordingPort, Inst, FakeClock],
) -> None:
    guard, port, inst, clock = guarded
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    assert port.sent == [answer_frame(OURS, VIP4, 100)]
    for _ in range(5):  # the rest of the claimer's burst, back to back
        guard.heard("lab0", garp_frame(THEIRS, VIP4))
    assert len(port.sent) == 1
    await clock.advance(ANSWER_GAP)
    assert len(port.sent) == 2  # the last word is ours
    guard.heard("lab0", unsolicited_na_frame(THEIRS, VIP6))
    assert port.sent[-1] == answer_frame(OURS, VIP6, 100)
    assert (inst.counters["claims_heard"], inst.counters["claims_answered"]) == (7, 3)


async def test_what_is_not_answered(
    guarded: tuple[ClaimGuard, RecordingPort, Inst, FakeClock],
) -> None:
    guard, port, _, _ = guarded
    guard.heard("lab0", garp_frame(OURS, VIP4))  # our own
    guard.heard("lab0", garp_frame(THEIRS, IPv4Address("192.0.2.7")))  # not ours
    guard.heard("lab1", garp_frame(THEIRS, VIP4))  # another interface
    # A halo master of higher priority (or equal, with a higher MAC) has the last word.
    guard.heard("lab0", answer_frame(THEIRS, VIP4, 101))
    guard.heard("lab0", answer_frame(THEIRS, VIP4, 100))
    assert port.sent == []
    guard.heard("lab0", answer_frame(THEIRS, VIP4, 99))  # lower: answered
    assert len(port.sent) == 1


async def test_leaving_master_stops_answers_and_cancels_the_trailing_one(
    guarded: tuple[ClaimGuard, RecordingPort, Inst, FakeClock],
) -> None:
    guard, port, inst, clock = guarded
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    inst.master = False
    guard.update([inst])
    await clock.advance(1)
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    assert len(port.sent) == 1
    assert clock.pending() == 0
    guard.close()


def advert(mac: bytes, priority: int, vrid: int = 51) -> bytes:
    frame = Ether(src=mac.hex(":"), dst="01:00:5e:00:00:12") / IP(
        src="192.0.2.12", dst="224.0.0.18", proto=112, ttl=255
    )
    return bytes(frame / VRRPv3(vrid=vrid, priority=priority, ipcount=1, addrlist=[str(VIP4)]))


def test_adverts_are_read_for_vrid_and_priority() -> None:
    assert parse_advert(advert(THEIRS, 110)) == Advert(51, 110, THEIRS)
    assert parse_advert(garp_frame(THEIRS, VIP4)) is None


async def test_the_master_we_are_about_to_yield_to_is_not_answered(
    guarded: tuple[ClaimGuard, RecordingPort, Inst, FakeClock],
) -> None:
    """The heal seen from the node that loses: the winner's advert arrives just before its
    announcements, and our step-down has not happened yet."""
    guard, port, _, clock = guarded
    guard.heard("lab0", advert(THEIRS, 110))
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    guard.heard("lab0", advert(THEIRS, 110, vrid=52))  # another VRID tells nothing
    assert port.sent == []
    lower = mac_bytes("02:48:41:00:00:03")
    guard.heard("lab0", advert(lower, 90))  # a lower priority is answered
    guard.heard("lab0", garp_frame(lower, VIP4))
    assert len(port.sent) == 1
    await clock.advance(HIGHER_FOR)  # not heard advertising for a while: answered again
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    assert len(port.sent) == 2


async def test_a_master_whose_priority_fell_yields_to_the_winner(
    guarded: tuple[ClaimGuard, RecordingPort, Inst, FakeClock],
) -> None:
    """A tracked check lowered the master (100 -> 80) under a backup (90), which took over:
    its advert and announcements must stand, and our answers carry the priority we have now."""
    guard, port, _, _ = guarded
    guard.note_priority("VI_1", 80)
    guard.heard("lab0", advert(THEIRS, 90))
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    guard.heard("lab0", answer_frame(THEIRS, VIP4, 90))  # a halo winner's answer, marked
    assert port.sent == []
    lower = mac_bytes("02:48:41:00:00:03")
    guard.heard("lab0", garp_frame(lower, VIP4))  # anyone else is still answered
    assert port.sent == [answer_frame(OURS, VIP4, 80)]


async def test_forgotten_at_the_step_down_before_the_backend_withdraws(
    guarded: tuple[ClaimGuard, RecordingPort, Inst, FakeClock],
) -> None:
    """The engine's BACKUP reaches the guard at once; the backend's own view (``master``)
    follows after a task switch and must not bring the addresses back meanwhile."""
    guard, port, inst, clock = guarded
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    guard.heard("lab0", garp_frame(THEIRS, VIP4))  # a trailing answer is due
    guard.forget("VI_1")
    guard.update([inst])  # inst.master is still True here
    await clock.advance(1)
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    assert len(port.sent) == 1
    assert clock.pending() == 0
    guard.note_master("VI_1", 100, 51)  # MASTER again
    guard.update([inst])
    guard.heard("lab0", garp_frame(THEIRS, VIP4))
    assert len(port.sent) == 2
