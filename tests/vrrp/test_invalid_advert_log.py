"""Invalid adverts are logged one line per source per minute, with the count."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

import pytest

from halo_core.vrrp.engine import InvalidAdvertLog
from halo_core.vrrp.packet import RejectReason
from halo_tool_lab.clock import FakeClock

PEER = IPv4Address("192.0.2.7")
OTHER = IPv4Address("192.0.2.8")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_a_stream_of_invalid_adverts_gives_one_line_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    limiter = InvalidAdvertLog("VI_1", clock)
    caplog.set_level(logging.DEBUG, logger="halo.vrrp")
    for _ in range(600):  # a minute of a wrong address list at 10 adverts a second
        limiter.note(PEER, RejectReason.ADDRESS_LIST_MISMATCH)
    limiter.note(OTHER, RejectReason.ADDRESS_LIST_MISMATCH)
    assert warnings(caplog) == [
        f"VI_1: advert from {PEER}: address list mismatch",
        f"VI_1: advert from {OTHER}: address list mismatch",
    ]
    caplog.clear()
    limiter.note(PEER, RejectReason.AUTH_MISMATCH)
    await clock.advance(60)
    assert warnings(caplog) == [
        f"VI_1: 600 more invalid adverts from {PEER} in the last minute"
        " (address list mismatch: 599, auth mismatch: 1)"
    ]
    caplog.clear()
    await clock.advance(60)  # quiet for a minute: nothing to say, and the next is logged
    assert warnings(caplog) == []
    limiter.note(PEER, RejectReason.ADDRESS_LIST_MISMATCH)
    assert len(warnings(caplog)) == 1
    limiter.close()
    assert clock.pending() == 0
