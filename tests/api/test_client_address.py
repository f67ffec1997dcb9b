"""Per-IP limits behind a load balancer: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from server.api.keys import GATEWAY
from server.client_address import ClientAddresses
from tests.conftest import ServerFactory
from tests.support import Clients, connect_error, rest

PROXIES = ClientAddresses([ip_network("10.0.0.0/8"), ip_network("::1")])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("10.0.0.1", None, "10.0.0.1"),  # a proxy's own request
        ("10.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("::1", "2001:db8::7", "2001:db8::7"),
        # The client wrote the left entries itself; the rightmost untrusted hop is the truth.
        ("10.0.0.1", "198.51.100.1, 203.0.113.5, 10.0.0.2", "203.0.113.5"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # every hop is ours: the first one
        ("10.0.0.1", "not-an-ip", "not-an-ip"),  # what our proxy wrote, kept as a key
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer's header is ignored
        (None, "198.51.100.1", "unknown"),
    ],
)
def test_the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy(
    peer: str | None, forwarded_for: str | None, client: str
) -> None:
    assert PROXIES.of(peer, forwarded_for) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert ClientAddresses([]).of("127.0.0.1", "203.0.113.5") == "127.0.0.1"


async def test_connect_limit_counts_each_forwarded_client_when_the_proxy_is_trusted(
    server_factory: ServerFactory,
    socket_clients: Clients,
) -> None:
    server = await server_factory(trusted_proxies=["127.0.0.1"], connects_burst_per_ip=2, connects_per_min_per_ip=1)
    auth = {"token": server.token()}
    first = {"X-Forwarded-For": "203.0.113.5"}
    for _ in range(2):
        await socket_clients.connect(server.url, auth=auth, headers=first, transports=["websocket"])
    error = await connect_error(server.url, auth=auth, headers=first)
    assert error["code"] == "rate_limited"
    # Another client behind the same proxy has its own budget, and is listed by its own address.
    await socket_clients.connect(
        server.url, auth=auth, headers={"X-Forwarded-For": "203.0.113.6"}, transports=["websocket"]
    )
    addresses = sorted(str(conn.remote_addr) for conn in server.app[GATEWAY].registry.by_sid.values())
    assert addresses == ["203.0.113.5", "203.0.113.5", "203.0.113.6"]


async def test_an_untrusted_peer_cannot_pick_its_budget_with_the_header(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(connects_burst_per_ip=2, connects_per_min_per_ip=1)
    auth = {"token": server.token()}
    for n in (1, 2):
        await socket_clients.connect(server.url, auth=auth, headers={"X-Forwarded-For": f"203.0.113.{n}"})
    error = await connect_error(server.url, auth=auth, headers={"X-Forwarded-For": "203.0.113.3"})
    assert error["code"] == "rate_limited"


async def test_rest_bad_token_budget_is_per_forwarded_client(server_factory: ServerFactory) -> None:
    server = await server_factory(trusted_proxies=["127.0.0.0/8"], rest_per_min=1, rest_burst=2)
    bad = {"Authorization": "Bearer not-a-jwt", "X-Forwarded-For": "203.0.113.5"}
    statuses = [(await rest(server, "GET", "/agents", role=None, headers=bad))[0] for _ in range(3)]
    assert statuses == [401, 401, 429]
    status, _, _ = await rest(server, "GET", "/agents", role="viewer", headers={"X-Forwarded-For": "203.0.113.6"})
    assert status == 200
