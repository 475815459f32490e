"""What every per-address limit counts a peer as (issue 10): an IPv4 address, or an
IPv6 /64, which one host is routinely given whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Peer, ServerProcess

from chinwag.server.listener import peer_key


@pytest.mark.parametrize(
    ("peername", "key"),
    [
        (("203.0.113.7", 5050), "203.0.113.7"),
        (("::ffff:203.0.113.7", 5050, 0, 0), "203.0.113.7"),  # IPv4-mapped: the IPv4 address
        (("2001:db8:1:2::1", 5050, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff:ffff:ffff:fffe", 5050, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:3::1", 5050, 0, 0), "2001:db8:1:3::/64"),
        (("fe80::1%eth0", 5050, 0, 2), "fe80::/64"),
        (("::1", 5050, 0, 0), "::/64"),
        (None, "?"),
    ],
)
def test_peers_are_counted_by_ipv4_address_or_ipv6_64(peername: object, key: str) -> None:
    assert peer_key(peername) == key


async def test_the_per_address_cap_holds_over_ipv6(tmp_path: Path, peers: list[Peer]) -> None:
    settings = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "max_conns_per_address": 2}
    srv = ServerProcess(tmp_path / "v6", settings, args=["--host", "::1"]).start()
    try:
        for nick in ("one", "two"):
            peer = await Peer.connect(srv.port, host="::1")
            peers.append(peer)
            await peer.hello(nick)
        third = await Peer.connect(srv.port, host="::1")
        peers.append(third)
        frames = await third.expect_closed()
        assert [f["code"] for f in frames] == ["rate_limited"], frames
    finally:
        srv.kill()
