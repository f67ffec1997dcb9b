"""The user docs stand alone: nothing outside the repository is referred to, and every link resolves."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import ROOT, RunningServer, rest

USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.name)
def test_a_user_doc_names_no_file_outside_the_repository(doc: object) -> None:
    text = doc.read_text()  # type: ignore[attr-defined]
    assert not re.search(r"\bSPEC\b|shared folder|/work/", text), doc
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not re.match(r"[a-z]+:", target):
            assert (doc.parent / target).exists(), (doc, target)  # type: ignore[attr-defined]


async def test_the_served_api_documents_name_no_private_document(server: RunningServer) -> None:
    for path in ("/openapi.json", "/asyncapi.json"):
        status, body, _ = await rest(server, "GET", path, role=None)
        assert status == 200 and "SPEC" not in json.dumps(body), path
