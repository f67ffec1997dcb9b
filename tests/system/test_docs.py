"""The README stays true: its configuration table is the one `Settings` generates."""

from __future__ import annotations

import re

from server.config_table import config_table
from tests.support import ROOT


def test_readme_configuration_table_matches_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- config-table:start -->\n(.*?)<!-- config-table:end -->", readme, re.S)
    assert match, "README lost its configuration table markers"
    assert match.group(1).strip() == config_table().strip(), "run `make readme`"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "```sh\nmake test\n```" in readme
    assert ci.rstrip().endswith("exec make test")
