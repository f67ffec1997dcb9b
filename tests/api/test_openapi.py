"""The API documents, and schemathesis fuzzing the REST API against its own OpenAPI document."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.support import RunningServer, rest

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


async def test_openapi_describes_every_route_with_roles_and_models(server: RunningServer) -> None:
    status, spec, _ = await rest(server, "GET", "/openapi.json", role=None)
    assert status == 200 and spec["openapi"] == "3.1.0"
    paths = spec["paths"]
    for path, method in [
        ("/agents", "post"),
        ("/agents/{agent_id}/actions", "post"),
        ("/coordination/tasks/{task_id}", "patch"),
        ("/coordination/election/trigger", "post"),
        ("/coordination/consensus/{proposal_id}/votes", "post"),
        ("/alerts", "post"),
        ("/events", "get"),
        ("/ws/broadcast", "post"),
        ("/ws/connections/{connection_id}", "delete"),
    ]:
        assert method in paths[path], (path, method)
    create = paths["/agents"]["post"]
    assert "201" in create["responses"] and "422" in create["responses"]
    assert create["security"] == [{"bearer": []}] and "operator" in create["description"]
    assert "agent_created" in create["description"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert schema["properties"]["agent_type"]["enum"][0] == "macrophage"
    assert {"name": "limit", "in": "query"}.items() <= paths["/agents"]["get"]["parameters"][0].items()


async def test_openapi_documents_the_batch_broadcast_and_503(server: RunningServer) -> None:
    _, spec, _ = await rest(server, "GET", "/openapi.json", role=None)
    operation = spec["paths"]["/ws/broadcast"]["post"]
    body = spec["components"]["schemas"]["BroadcastBody"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in body["anyOf"]} == {"BroadcastRequest", "BroadcastBatch"}
    assert spec["components"]["schemas"]["BroadcastBatch"]["properties"]["events"]["maxItems"] == 1000
    assert {"202", "422", "503"} <= set(operation["responses"])
    assert "503" in spec["paths"]["/agents"]["post"]["responses"]


async def test_asyncapi_lists_every_event_type(server: RunningServer) -> None:
    status, spec, _ = await rest(server, "GET", "/asyncapi.json", role=None)
    assert status == 200 and spec["asyncapi"] == "3.0.0"
    messages = spec["components"]["messages"]
    assert len([name for name in messages if not name.startswith("request_")]) == 21
    assert messages["agent_created"]["payload"]["properties"]["data"]["$ref"].endswith("/Agent")
    assert "request_join" in messages
    status, page, response = await rest(server, "GET", "/docs/events", role=None)
    assert status == 200 and response.headers["Content-Type"].startswith("text/html")
    assert 'id="m-consensus_proposed"' in page and 'id="m-request_join"' in page
    assert "`" not in page  # Markdown backticks are rendered as <code>, not shown raw


async def test_probes_are_in_openapi_without_a_token(server: RunningServer) -> None:
    _status, spec, _ = await rest(server, "GET", "/openapi.json", role=None)
    for path in ("/health", "/ready", "/metrics"):
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [] and operation["tags"] == ["operations"], path
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert not any("head" in operations for operations in spec["paths"].values())
    assert "code" in spec["components"]["schemas"]["Problem"]["required"]


async def test_schemathesis_finds_no_server_error_or_schema_violation(server_factory: object, tmp_path: Path) -> None:
    server: RunningServer = await server_factory(rest_per_min=1_000_000, rest_burst=1_000_000)  # type: ignore[operator]
    assert SCHEMATHESIS.exists(), "schemathesis is a dev dependency (pip install -e .[dev])"
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {server.token()}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--max-examples",
        "15",
        "--seed",
        "1",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    assert "No issues found" in report or "passed" in report, report[-3000:]
