"""Rewrite the README's configuration table from `Settings` (`make readme`)."""

from __future__ import annotations

import re
from pathlib import Path

from server.config_table import config_table

README = Path(__file__).resolve().parent.parent / "README.md"

if __name__ == "__main__":
    text = README.read_text()
    table = f"<!-- config-table:start -->\n{config_table()}\n<!-- config-table:end -->"
    README.write_text(re.sub(r"<!-- config-table:start -->\n.*?<!-- config-table:end -->", table, text, flags=re.S))
