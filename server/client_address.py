"""The client's address for per-IP limits: the TCP peer, or whom a trusted proxy says it serves.

Behind a load balancer every connection comes from the balancer's address, so per-IP limits
would make all clients share one budget (a reconnect storm after a restart would be refused).
A proxy listed in `IMMUNE_TRUSTED_PROXIES` appends the address it served to `X-Forwarded-For`;
the client is the rightmost entry that is not itself a trusted proxy. Entries left of it were
written by the client and are never believed.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

MAX_ADDRESS_CHARS = 64


class ClientAddresses:
    """Resolves the address that per-IP limits count, trusting `X-Forwarded-For` only from `trusted`."""

    def __init__(self, trusted: Sequence[IPv4Network | IPv6Network]) -> None:
        self._trusted = tuple(trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client address of a request from `peer` carrying this `X-Forwarded-For` value."""
        if not self._trusted or not forwarded_for or peer is None or not self._is_trusted(peer):
            return peer or "unknown"
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop[:MAX_ADDRESS_CHARS] or "unknown"
        return hops[0][:MAX_ADDRESS_CHARS]  # every hop is one of ours: the first one is the client

    def _is_trusted(self, address: str) -> bool:
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._trusted)
