"""/docs (Swagger UI from npm) and /docs/events (the AsyncAPI page) as a reader sees them in headless Chromium."""

from __future__ import annotations

import shutil

from server.api.web_routes import missing_vendor_files
from tests.js_runner import JS_DIR, run_js
from tests.support import RunningServer, rest


def require_browser() -> str:
    """Path of Debian's chromium; fails (never skips) when it or the npm packages are missing."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian chromium is required (the README's test command installs it)"
    assert (JS_DIR / "node_modules" / "playwright-core").is_dir(), "run `npm ci --prefix tests/js` first"
    assert not missing_vendor_files(), f"run scripts/setup.sh (npm ci in web/): missing {missing_vendor_files()}"
    return chromium


async def test_docs_pages_render_every_route_and_event_offline(server: RunningServer) -> None:
    [seen] = await run_js("docs.mjs", {"URL": server.url, "CHROMIUM": require_browser()}, timeout=90)
    assert seen["errors"] == [] and seen["offsite"] == [] and seen["failed"] == [], seen
    operations = set(seen["operations"])
    _status, spec, _ = await rest(server, "GET", "/openapi.json", role=None)
    expected = {f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops}
    assert operations == expected and {"GET /health", "GET /ready", "GET /metrics"} <= operations
    assert '"level"' in seen["alertBody"] and '"message"' in seen["alertBody"], seen["alertBody"]
    assert {"agent_created", "consensus_proposed", "metrics_updated", "join"} <= set(seen["events"])
    assert {"agent_id", "energy", "health"} <= set(seen["agentFields"])
    assert seen["rawBackticks"] is False


async def test_vendor_files_are_allow_listed_and_pinned(server: RunningServer) -> None:
    status, _body, response = await rest(server, "GET", "/vendor/swagger-ui-bundle.js", role=None)
    assert status == 200 and response.headers["Cache-Control"].startswith("public")
    status, _, _ = await rest(server, "GET", "/vendor/..%2Fpackage.json", role=None)
    assert status == 404
