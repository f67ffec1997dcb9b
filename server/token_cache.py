"""Verified tokens remembered by their exact string until they expire, so a hot client pays one signature check."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

DEFAULT_MAX_TOKENS = 10_000


class Expiring(Protocol):
    """What the cache needs of an identity (server/auth.py's `Identity`): when its token expires."""

    @property
    def expires_at(self) -> float | None:
        """Unix time of the token's `exp`, or None when it has none."""
        ...


IdentityT = TypeVar("IdentityT", bound=Expiring)


class VerifiedTokens(Generic[IdentityT]):
    """A bounded LRU of token string → Identity; an entry is used only while PyJWT would accept it.

    Only successful verifications are stored (a bad token is checked every time, and is charged to
    its address first). At the bound the least recently used token is forgotten; it is verified
    again on its next use. Identity is immutable, so sharing one between requests is safe.
    """

    def __init__(
        self, leeway_s: float, max_tokens: int = DEFAULT_MAX_TOKENS, clock: Callable[[], float] = time.time
    ) -> None:
        self._leeway_s = leeway_s
        self._max_tokens = max_tokens
        self._clock = clock
        self._entries: OrderedDict[str, IdentityT] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> IdentityT | None:
        """The identity of a token verified before and not yet expired (with the leeway), else None."""
        identity = self._entries.get(token)
        if identity is None:
            return None
        if identity.expires_at is None or self._clock() >= identity.expires_at + self._leeway_s:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return identity

    def put(self, token: str, identity: IdentityT) -> IdentityT:
        """Remember a freshly verified token (only one with an expiry); returns the identity."""
        if identity.expires_at is not None:
            self._entries[token] = identity
            self._entries.move_to_end(token)
            if len(self._entries) > self._max_tokens:
                self._entries.popitem(last=False)
        return identity
