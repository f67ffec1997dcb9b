"""The README's configuration table, generated from `Settings` so the two never disagree."""

from __future__ import annotations

from pydantic_core import PydanticUndefined

from server.config import Settings


def config_table() -> str:
    """Markdown table of every IMMUNE_* setting with its default and meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name == "node_id":
            default = "random `node-xxxxxx`"
        elif field.default_factory is not None or field.default in (None, PydanticUndefined):
            default = "unset"
        else:
            default = f"`{field.default}`"
        rows.append(f"| `IMMUNE_{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(rows)
