"""JWT verification and minting, roles, and room access (SPEC §7)."""

from __future__ import annotations

import fnmatch
import os
import secrets
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import jwt

from server.config import Settings

SECRET_FILE = "jwt_secret"


class Role(IntEnum):
    """Roles are ordered: admin ⊇ operator ⊇ viewer."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3


class AuthError(Exception):
    """A token was missing, malformed, expired or not signed by us."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    subject: str
    roles: tuple[str, ...]
    room_patterns: tuple[str, ...] | None = None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def level(self) -> int:
        """The highest role level the identity holds (0 for none)."""
        return max((Role[name.upper()].value for name in self.roles if name.upper() in Role.__members__), default=0)

    def has_role(self, role: Role) -> bool:
        """True if the identity holds `role` or a role that includes it."""
        return self.level >= role

    def may_join(self, room: str) -> bool:
        """True unless a `rooms` claim exists and no pattern in it matches `room`."""
        if self.room_patterns is None:
            return True
        return any(fnmatch.fnmatchcase(room, pattern) for pattern in self.room_patterns)


def load_or_create_secret(data_dir: Path) -> str:
    """Read the generated HS256 secret, creating it (mode 0600) on first start."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


class TokenAuthority:
    """Verifies tokens with the configured key; mints them when it holds a secret."""

    def __init__(self, settings: Settings) -> None:
        self.leeway = settings.jwt_leeway_s
        if settings.jwt_public_key is not None:
            self._verify_key: str = settings.jwt_public_key.get_secret_value()
            self.algorithms = ["RS256", "ES256"]
            self._secret: str | None = None
        else:
            secret = (
                settings.jwt_secret.get_secret_value()
                if settings.jwt_secret is not None
                else load_or_create_secret(settings.data_dir)
            )
            self._verify_key = secret
            self._secret = secret
            self.algorithms = ["HS256"]

    def verify(self, token: str | None) -> Identity:
        """Return the identity of a valid token or raise AuthError saying why not."""
        if not token:
            raise AuthError("missing token")
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=self.algorithms,
                leeway=self.leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        return _identity_from_claims(claims)

    def mint(self, subject: str, roles: list[str], ttl_s: float = 3600, rooms: list[str] | None = None) -> str:
        """Sign a token (HS256 deployments only)."""
        if self._secret is None:
            raise AuthError("this deployment verifies RS256/ES256 tokens; mint them with your private key")
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "roles": roles, "iat": now, "exp": now + int(ttl_s)}
        if rooms is not None:
            claims["rooms"] = rooms
        return jwt.encode(claims, self._secret, algorithm="HS256")


def _identity_from_claims(claims: dict[str, Any]) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid token: sub must be a non-empty string")
    raw_roles = claims.get("roles", ["viewer"])
    if isinstance(raw_roles, str):
        raw_roles = [raw_roles]
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise AuthError("invalid token: roles must be a list of strings")
    known = [r for r in raw_roles if r.upper() in Role.__members__]
    rooms = claims.get("rooms")
    if rooms is not None and (not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms)):
        raise AuthError("invalid token: rooms must be a list of glob patterns")
    exp = claims.get("exp")
    return Identity(
        subject=subject,
        roles=tuple(known),
        room_patterns=tuple(rooms) if rooms is not None else None,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        claims=claims,
    )
