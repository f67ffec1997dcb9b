"""The nesting limit of decoded JSON, shared by REST bodies and client events (imports neither)."""

from __future__ import annotations


def json_depth(value: object, limit: int) -> int:
    """Nesting depth of a decoded JSON value, counting stops past `limit` (cheap on hostile input)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest
