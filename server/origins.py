"""Which browser origins may connect (SPEC §7 origin check), shared by Socket.IO and REST."""

from __future__ import annotations

from urllib.parse import urlsplit

from server.config import Settings

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class OriginPolicy:
    """`IMMUNE_CORS_ORIGINS` if set, else same origin plus localhost/127.0.0.1 on any port."""

    def __init__(self, settings: Settings) -> None:
        self.explicit = frozenset(o.rstrip("/") for o in settings.cors_origins)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """True when a request with this Origin (None = non-browser client) may proceed."""
        if origin is None:
            return True
        origin = origin.rstrip("/")
        if "*" in self.explicit or origin in self.explicit:
            return True
        if self.explicit:
            return False
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"}:
            return False
        if host is not None and parts.netloc == host:
            return True
        return (parts.hostname or "") in LOCAL_HOSTS
