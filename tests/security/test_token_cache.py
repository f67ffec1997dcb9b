"""The verified-token cache: a hit only while PyJWT would still accept the token; bounded."""

from __future__ import annotations

import asyncio
import time

from server.auth import Identity
from server.token_cache import VerifiedTokens
from tests.conftest import ServerFactory
from tests.support import rest


def identity(expires_at: float | None) -> Identity:
    return Identity(subject="s", roles=("viewer",), expires_at=expires_at)


def test_an_entry_is_used_until_expiry_plus_leeway_then_forgotten() -> None:
    now = [1000.0]
    cache = VerifiedTokens(leeway_s=5, clock=lambda: now[0])
    cache.put("t", identity(1010.0))
    assert cache.get("t") is not None
    now[0] = 1014.9
    assert cache.get("t") is not None
    now[0] = 1015.0
    assert cache.get("t") is None and len(cache) == 0
    assert cache.get("other") is None


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache = VerifiedTokens(leeway_s=0, max_tokens=3, clock=lambda: 0.0)
    for token in "abc":
        cache.put(token, identity(100.0))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", identity(100.0))
    assert len(cache) == 3
    assert cache.get("b") is None and all(cache.get(token) is not None for token in "acd")
    cache.put("never-expires", identity(None))
    assert cache.get("never-expires") is None, "only tokens with an expiry are kept"


async def test_a_cached_token_is_still_refused_once_it_expires(server_factory: ServerFactory) -> None:
    server = await server_factory(jwt_leeway_s=0)
    token = server.authority.mint("short", ["viewer"], ttl_s=2)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await rest(server, "GET", "/ws/stats", role=None, headers=headers))[0] == 200
    assert (await rest(server, "GET", "/ws/stats", role=None, headers=headers))[0] == 200  # from the cache
    exp = int(time.time()) + 2
    await asyncio.sleep(max(0.0, exp + 1.1 - time.time()))
    status, body, _ = await rest(server, "GET", "/ws/stats", role=None, headers=headers)
    assert status == 401 and "expired" in body["detail"]
