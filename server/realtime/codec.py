"""orjson behind the `json` module interface python-socketio and python-engineio expect."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any, **_options: Any) -> str:
    """Serialize compactly (separators and other json.dumps options are orjson's defaults)."""
    return orjson.dumps(obj).decode()


def loads(text: str | bytes, **_options: Any) -> Any:
    """Parse JSON; raises ValueError on malformed input like json.loads."""
    return orjson.loads(text)
