"""URL paths that both the REST layer and the real-time layer need (imports neither)."""

from __future__ import annotations

SOCKETIO_PATH = "/socket.io/"
"""Where Socket.IO is served; the REST middlewares step aside for it."""
