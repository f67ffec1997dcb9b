"""JWT verification and minting, roles, and room access (SPEC §7)."""

from __future__ import annotations

import fnmatch
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import jwt
import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from server.config import Settings
from server.token_cache import VerifiedTokens

SECRET_FILE = "jwt_secret"
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
ROLE_NAMES = ("viewer", "operator", "admin")
MAX_CLAIM_TIME = 253_402_300_799
"""The last second of year 9999: a time claim beyond it (or not a JSON number) is refused."""
TIME_CLAIMS = ("exp", "nbf", "iat")

VerifyKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
log = structlog.get_logger(__name__)


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
        return max((Role[name.upper()].value for name in self.roles), default=0)

    def has_role(self, role: Role) -> bool:
        """True if the identity holds `role` or a role that includes it."""
        return self.level >= role

    def may_join(self, room: str) -> bool:
        """True unless a `rooms` claim exists and no pattern in it matches `room`."""
        if self.room_patterns is None:
            return True
        return any(fnmatch.fnmatchcase(room, pattern) for pattern in self.room_patterns)


class KeyConfigError(ValueError):
    """The configured JWT key (or the generated secret file) is unusable; the server refuses to start."""


def load_or_create_secret(data_dir: Path) -> str:
    """Read the generated HS256 secret, creating it (mode 0600, atomically) on first start.

    An existing file readable by group or others is tightened to 0600 with a warning; an empty
    or too-short file is refused rather than used.
    """
    path = data_dir / SECRET_FILE
    try:
        return _read_secret_file(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Write a private temporary file, then link it into place: the secret is never visible
    # under its name half-written or with wider permissions, and a concurrent first start
    # cannot overwrite the secret another process already published.
    tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0600 whatever the umask
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process won the race; use its secret
            return _read_secret_file(path)
        except OSError:  # a filesystem without hard links: rename (last writer wins a race)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return secret


def _read_secret_file(path: Path) -> str:
    try:
        return _read_private(path)
    except (FileNotFoundError, KeyConfigError):
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KeyConfigError(f"cannot read the JWT secret file {path}: {reason}") from None


def _read_private(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            try:
                os.fchmod(handle.fileno(), 0o600)
            except OSError as exc:
                raise KeyConfigError(
                    f"{path} is readable by group or others (mode {mode:04o}) and could not be "
                    f"tightened to 0600: {exc.strerror}"
                ) from None
            log.warning("jwt_secret_permissions_tightened", path=str(path), old_mode=f"{mode:04o}", new_mode="0600")
        secret = handle.read().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise KeyConfigError(
            f"{path} holds {len(secret.encode())} bytes; a JWT secret needs at least {MIN_SECRET_BYTES} "
            "(delete the file to generate a new one)"
        )
    return secret


def check_secret(secret: str, source: str = "IMMUNE_JWT_SECRET") -> str:
    """Return `secret` if it is long enough for HS256, else raise KeyConfigError."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise KeyConfigError(f"{source} is {size} bytes; HS256 needs at least {MIN_SECRET_BYTES} random bytes")
    return secret


def load_public_key(pem: str) -> tuple[str, VerifyKey]:
    """Parse a PEM public key and return (the one algorithm it implies, the key).

    RSA (≥ 2048 bits) → RS256; EC on P-256 → ES256. Anything else raises KeyConfigError.
    """
    text = pem.strip()
    if "PRIVATE KEY" in text:
        raise KeyConfigError("IMMUNE_JWT_PUBLIC_KEY holds a private key; give the server only the public key")
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyConfigError(f"IMMUNE_JWT_PUBLIC_KEY is not a PEM public key ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyConfigError(
                f"IMMUNE_JWT_PUBLIC_KEY is a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
            )
        return "RS256", key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyConfigError(
                f"IMMUNE_JWT_PUBLIC_KEY is an EC key on {key.curve.name}; only P-256 (prime256v1, ES256) is supported"
            )
        return "ES256", key
    raise KeyConfigError(
        f"IMMUNE_JWT_PUBLIC_KEY is an unsupported key type ({type(key).__name__.removeprefix('_')}); "
        "use an RSA (RS256) or EC P-256 (ES256) key"
    )


class TokenAuthority:
    """Verifies tokens with the configured key; mints them when it holds a secret.

    The one accepted algorithm follows from the configured key, never from a token's header:
    a shared secret means HS256, an RSA public key RS256, an EC P-256 public key ES256.
    """

    def __init__(self, settings: Settings) -> None:
        self.leeway = settings.jwt_leeway_s
        self._verify_key: str | VerifyKey
        self._secret: str | None
        if settings.jwt_public_key is not None:
            self.algorithm, self._verify_key = load_public_key(settings.jwt_public_key.get_secret_value())
            self._secret = None
            if settings.jwt_secret is not None:
                # Both set is most likely a leftover; say which one is in force (never the values).
                log.warning("jwt_secret_ignored", reason="IMMUNE_JWT_PUBLIC_KEY is set", algorithm=self.algorithm)
        else:
            secret = (
                check_secret(settings.jwt_secret.get_secret_value())
                if settings.jwt_secret is not None
                else load_or_create_secret(settings.data_dir)
            )
            self._verify_key = secret
            self._secret = secret
            self.algorithm = "HS256"
        self.algorithms = [self.algorithm]
        self._verified = VerifiedTokens[Identity](self.leeway)

    @property
    def can_mint(self) -> bool:
        """True for HS256 deployments (the server holds the secret)."""
        return self._secret is not None

    def verified(self, token: str) -> Identity | None:
        """The identity of a token verified before and still valid, with no signature check (else None)."""
        return self._verified.get(token)

    def verify(self, token: str | None) -> Identity:
        """Return the identity of a valid token or raise AuthError saying why not."""
        if not token:
            raise AuthError("missing token")
        if (cached := self._verified.get(token)) is not None:
            return cached
        try:
            # `algorithms` holds the one algorithm the configured key implies; PyJWT refuses any
            # other (`none`, HS/RS confusion) before it verifies a signature or reads a claim.
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=self.algorithms,
                leeway=self.leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.InvalidAlgorithmError as exc:
            algorithm = jwt.get_unverified_header(token).get("alg")  # parsed already: it is well-formed
            raise AuthError(
                f"invalid token: alg {algorithm!r} is not accepted; this deployment accepts {self.algorithm}"
            ) from exc
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        return self._verified.put(token, _identity_from_claims(claims))

    def mint(self, subject: str, roles: list[str], ttl_s: float = 3600, rooms: list[str] | None = None) -> str:
        """Sign a token (HS256 deployments only)."""
        if self._secret is None:
            raise AuthError(f"this deployment verifies {self.algorithm} tokens; mint them with your private key")
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "roles": roles, "iat": now, "exp": now + int(ttl_s)}
        if rooms is not None:
            claims["rooms"] = rooms
        return jwt.encode(claims, self._secret, algorithm="HS256")


def _identity_from_claims(claims: dict[str, Any]) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid token: sub must be a non-empty string")
    for name in TIME_CLAIMS:
        if name in claims:
            _check_time_claim(name, claims[name])
    # A token without a `roles` claim is a viewer; one with a claim must say it exactly
    # (docs/security.md): a bare string, a wrong case or an unknown name is a malformed token, not "no role".
    raw_roles = claims.get("roles", ["viewer"])
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) and r in ROLE_NAMES for r in raw_roles):
        raise AuthError(f"invalid token: roles must be a list of {', '.join(ROLE_NAMES)}")
    rooms = claims.get("rooms")
    if rooms is not None and (not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms)):
        raise AuthError("invalid token: rooms must be a list of glob patterns")
    return Identity(
        subject=subject,
        roles=tuple(dict.fromkeys(raw_roles)),
        room_patterns=tuple(rooms) if rooms is not None else None,
        expires_at=float(claims["exp"]),
        claims=claims,
    )


def _check_time_claim(name: str, value: Any) -> None:
    """A NumericDate (RFC 7519): a JSON number within the years 1970..9999, never a string or a bool.

    PyJWT reads `int(value)`, so `"exp": "1700000000"` would pass its check while the connection
    stored no expiry, and `10**400` would overflow later as a float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"invalid token: {name} must be a number")
    if not 0 <= value <= MAX_CLAIM_TIME:  # compares a huge int exactly; NaN and ±inf fail it too
        raise AuthError(f"invalid token: {name} is out of range")
