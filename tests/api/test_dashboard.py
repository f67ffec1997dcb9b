"""The swarm console (web/) in a real headless Chromium against a real server.

Every panel, the operator actions, the viewer's read-only mode, a reconnect with resume, a token
expiry, a phone-sized screen; the screenshot the README shows is saved by the first test
(IMMUNE_DASHBOARD_SHOT=docs/dashboard.png to refresh it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from server.api.keys import GATEWAY
from server.api.web_routes import missing_vendor_files
from tests.conftest import ServerFactory
from tests.js_runner import JS_DIR, require_node
from tests.proxy import CuttableProxy
from tests.support import ROOT, RunningServer, rest, wait_until

WEB_DIR = ROOT / "web"


class Page:
    """tests/js/dashboard.mjs: one JSON command to Chromium, one JSON answer back."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def do(self, cmd: str, timeout: float = 30, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(f"the browser driver ended during {cmd} {args}: {err.decode()}")
        reply = json.loads(raw)
        assert reply["ok"], f"{cmd} {args}: {reply['error']}"
        return reply["result"]

    async def wait(self, selector: str, text: str | None = None) -> None:
        await self.do("wait", selector=selector, **({} if text is None else {"text": text}))

    async def state(self, expr: str) -> Any:
        return await self.do("eval", expr=f"(() => {{ const s = window.immuneConsole.getState(); return {expr}; }})()")

    async def assert_clean(self) -> None:
        report = await self.do("report")
        assert report["pageErrors"] == [] and report["consoleErrors"] == [], report
        assert report["offsite"] == [], report  # no CDN, nothing outside this server
        assert report["failed"] == [], report  # no 401 for /favicon.ico, no 404 for a module


def require_browser() -> str:
    """Debian chromium and the npm packages; missing ones fail the test (never a skip)."""
    require_node()
    chromium = shutil.which("chromium")
    assert chromium, "Debian chromium is required (the README's test command installs it)"
    assert (JS_DIR / "node_modules" / "playwright-core").is_dir(), "run `npm ci --prefix tests/js` first"
    assert not missing_vendor_files(), f"run scripts/setup.sh (npm ci in web/): missing {missing_vendor_files()}"
    return chromium


@asynccontextmanager
async def browser(url: str, width: int = 1280, height: int = 900) -> AsyncIterator[Page]:
    proc = await asyncio.create_subprocess_exec(
        require_node(),
        str(JS_DIR / "dashboard.mjs"),
        cwd=JS_DIR,
        env={**os.environ, "URL": url, "CHROMIUM": require_browser(), "WIDTH": str(width), "HEIGHT": str(height)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Page(proc)
        assert proc.stdin is not None
        proc.stdin.write(b'{"cmd": "quit"}\n')
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def post(server: RunningServer, path: str, body: dict[str, Any] | None = None, status: int = 0) -> Any:
    got, answer, _ = await rest(server, "POST", path, json=body)
    assert got < 300 and (not status or got == status), (path, got, answer)
    return answer


async def test_every_panel_and_the_operator_actions(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = await server_factory(metrics_interval_s=0.3)
    # Before the page loads: what the feed must backfill from GET /events.
    m1 = await post(server, "/agents", {"agent_type": "macrophage", "name": "m1"})
    await post(server, "/alerts", {"level": "critical", "message": "pathogen load high"})
    async with browser(server.url) as page:
        await page.do("goto", path=f"/#token={server.token(sub='ops')}")
        await page.wait("#status[data-state=live]")
        assert "live as ops (admin)" in await page.do("text", selector="#status")
        assert "token=" not in await page.do("eval", expr="location.href")
        assert "Operator token" in await page.do("text", selector="#mode")
        # The Nodes panel lists this node (one node: not clustered) with its connection.
        await page.wait(f'#nodes tr[data-node-id="{server.settings.node_id}"] .connections', "1")
        # Feed backfilled, in readable one-line summaries.
        await page.wait("#feed li", "CRITICAL alert: pathogen load high")
        await page.wait("#feed li", "agent m1 (")
        # Alerts by level, from the backfill.
        await page.wait("#alert-counts [data-level=critical]", "1 critical")

        # Create an agent from the console: the new row is first and highlighted.
        await page.do("fill", selector="#agent-name", value="console-1")
        await page.do("click", selector="#agent-form button")
        await page.wait("#agents tr:first-child", "console-1")
        # Run an action: energy and status change live (agent_action applied, no reload).
        row = f'#agents tr[data-agent-id="{m1["agent_id"]}"]'
        await page.wait(row)
        await page.do("select", selector=f"{row} select", value="patrol")
        await page.do("click", selector=f"{row} button")
        await page.wait(f"{row} .energy", "95")
        await page.wait(f"{row} .badge", "patrolling")
        assert (await page.do("texts", selector="#agents tr"))[0].startswith("m1")  # changed: on top
        # A change made elsewhere (REST) shows too.
        status, _, _ = await rest(server, "PATCH", f"/agents/{m1['agent_id']}", json={"health": 0.5})
        assert status == 200
        await page.wait(f"{row} .health", "50%")

        # Tasks.
        task = await post(server, "/coordination/tasks", {"task_type": "scan", "agent_id": m1["agent_id"]})
        await page.wait(f'#tasks tr[data-task-id="{task["task_id"]}"]', "assigned")
        await rest(server, "PATCH", f"/coordination/tasks/{task['task_id']}", json={"status": "running"})
        await page.wait(f'#tasks tr[data-task-id="{task["task_id"]}"]', "running")

        # Election: trigger from the console; leader, term and history appear.
        await page.do("click", selector="#election-form button")
        await page.wait("#leader", "term 1")
        assert "leader " in await page.do("text", selector="#leader")
        await page.wait("#election-history li", "election triggered")

        # Consensus: propose from the console, vote, see the progress and the outcome.
        await page.do("fill", selector="#proposal-type", value="scale_up")
        await page.do("fill", selector="#proposal-threshold", value="0.5")
        await page.do("click", selector="#proposal-form button")
        await page.wait("#proposals li[data-status=pending]", "0 for, 0 against of 2 voters")
        await page.do("click", selector="#proposals li[data-status=pending] button[data-approve=true]")
        await page.wait("#proposals li[data-status=approved]", "1 for")

        # System health and charts from metrics_updated.
        await page.wait("#health dd[data-key=health]", "healthy")
        await wait_until_page(page, "s.metrics.points.length >= 3")
        assert await page.do("eval", expr="document.querySelectorAll('#charts-panel canvas').length") == 3
        await page.wait("#health dd[data-key=connections]")
        assert (await page.do("text", selector="#health dd[data-key=connections]")).isdigit()

        # Feed: filter by room and by type, pause and resume.
        rooms = "[...document.querySelectorAll('#feed li .room')].map(e => e.textContent)"
        await page.do("select", selector="#feed-room", value="tasks")
        await until(page, f"(r => r.length > 0 && r.every(x => x === 'tasks'))({rooms})")
        await page.do("select", selector="#feed-room", value="")
        types = "[...document.querySelectorAll('#feed li')].map(li => li.dataset.eventType)"
        await page.do("select", selector="#feed-type", value="agent_action")
        await until(page, f"(t => t.length > 0 && t.every(x => x === 'agent_action'))({types})")
        assert not any("agent_action" in t for t in await page.do("texts", selector="#feed li .summary"))  # readable
        await page.do("select", selector="#feed-type", value="")
        await until(page, f"new Set({types}).size > 3")
        await page.do("click", selector="#feed-pause")
        await post(server, "/alerts", {"level": "warning", "message": "held while paused"})
        await page.wait("#feed-pause", "Resume (")
        assert not any("held while paused" in t for t in await page.do("texts", selector="#feed li"))
        await page.wait("#alert-counts [data-level=warning]", "1 warning")  # panels stay live
        await page.do("click", selector="#feed-pause")
        await page.wait("#feed li", "WARNING alert: held while paused")

        shot = screenshot_path(tmp_path)
        await page.do("screenshot", path=shot)
        assert await asyncio.to_thread(os.path.getsize, shot) > 10_000
        await page.assert_clean()


def screenshot_path(tmp_path: Path) -> str:
    """Where the first test saves its screenshot: IMMUNE_DASHBOARD_SHOT (docs/dashboard.png) or a temp file."""
    return os.path.abspath(os.environ.get("IMMUNE_DASHBOARD_SHOT") or tmp_path / "dashboard.png")


async def wait_until_page(page: Page, expr: str, timeout: float = 20) -> None:
    """Poll an expression of the console's state `s` until it holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await page.state(expr):
        assert asyncio.get_running_loop().time() < deadline, expr
        await asyncio.sleep(0.1)


async def until(page: Page, expr: str, timeout: float = 20) -> None:
    """Poll a page expression until it holds (bounded): the page renders once per animation frame."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await page.do("eval", expr=expr):
        assert asyncio.get_running_loop().time() < deadline, expr
        await asyncio.sleep(0.1)


async def test_a_viewer_token_is_read_only_and_says_so(server: RunningServer) -> None:
    await post(server, "/agents", {"agent_type": "neutrophil", "name": "n1"})
    async with browser(server.url) as page:
        await page.do("goto", path=f"/#token={server.token('viewer', sub='watcher')}")
        await page.wait("#status[data-state=live]")
        assert "Read-only: this is a viewer token" in await page.do("text", selector="#mode")
        await page.wait("#agents tr", "n1")
        visible = "[...document.querySelectorAll('form.act')].filter(f => !f.hidden).length"
        assert await page.do("eval", expr=visible) == 0
        assert await page.do("eval", expr="document.querySelectorAll('#agents button').length") == 0
        await page.assert_clean()


async def test_reconnect_says_when_and_resumes_with_the_missed_events(server: RunningServer) -> None:
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    await proxy.start()
    try:
        async with browser(proxy.url) as page:
            await page.do("goto", path=f"/#token={server.token(sub='ops')}")
            await page.wait("#status[data-state=live]")
            proxy.cut(stay_down=True)
            await page.wait("#status[data-state=reconnecting]", "reconnecting in")
            assert " s — " in await page.do("text", selector="#status")
            missed = [await post(server, "/alerts", {"level": "info", "message": f"missed {i}"}) for i in range(3)]
            proxy.restore()
            await page.wait("#status[data-state=live]", "resumed, 3 missed events replayed")
            for i in range(3):
                await page.wait("#feed li", f"INFO alert: missed {i}")
            ids = await page.do("eval", expr="[...document.querySelectorAll('#feed li')].map(li => li.dataset.eventId)")
            assert all(ids.count(str(m["event_id"])) == 1 for m in missed), ids  # once each

            # A server-side close (slow consumer) is resumed too; a kick is final.
            gateway = server.app[GATEWAY]
            [sid] = [sid for sid, c in gateway.registry.by_sid.items() if c.client_id == "dashboard"]
            gateway.manager.on_overflow(sid)
            await wait_until(
                lambda: any(c.client_id == "dashboard" and s != sid for s, c in gateway.registry.by_sid.items())
            )
            await page.wait("#status[data-state=live]", "resumed")
            [sid] = [sid for sid, c in gateway.registry.by_sid.items() if c.client_id == "dashboard"]
            status, _, _ = await rest(server, "DELETE", f"/ws/connections/{sid}")
            assert status == 204
            await page.wait("#status[data-state=closed]", "closed by an administrator")
    finally:
        await proxy.close()


async def test_an_expired_token_asks_for_a_new_one_and_resumes(server_factory: ServerFactory) -> None:
    server = await server_factory(jwt_leeway_s=0)
    async with browser(server.url) as page:
        await page.do("goto", path=f"/#token={server.token(sub='ops', ttl_s=8)}")
        await page.wait("#status[data-state=live]")
        await page.wait("#status[data-state=expired]", "token expired")
        assert await page.do("eval", expr="!document.querySelector('#token-form').hidden")
        assert "Your token expired." in await page.do("text", selector="#token-reason")
        missed = await post(server, "/alerts", {"level": "info", "message": "while expired"})
        await page.do("fill", selector="#token-input", value=server.token(sub="ops"))
        await page.do("click", selector="#token-entry button")
        await page.wait("#status[data-state=live]", "resumed, 1 missed event replayed")
        await page.wait(f'#feed li[data-event-id="{missed["event_id"]}"]')
        assert await page.do("eval", expr="document.querySelector('#token-form').hidden")


async def test_a_refused_token_says_why(server: RunningServer) -> None:
    async with browser(server.url) as page:
        await page.do("goto", path="/#token=not-a-jwt")
        await page.wait("#status[data-state=refused]", "refused: unauthorized")
        assert "The server refused the token" in await page.do("text", selector="#token-reason")


async def test_a_phone_sized_screen_shows_every_column_that_matters(server: RunningServer) -> None:
    await post(server, "/agents", {"agent_type": "macrophage", "name": "phone-agent"})
    async with browser(server.url, width=400, height=820) as page:
        await page.do("goto", path=f"/#token={server.token(sub='ops')}")
        await page.wait("#agents tr", "phone-agent")
        width = await page.do("eval", expr="document.documentElement.scrollWidth")
        assert width <= 400, width  # nothing pushes the page sideways
        cells = "[...document.querySelectorAll('#agents tr:first-child td:not(.act)')].filter(td => td.offsetParent)"
        right = f"Math.max(...{cells}.map(td => td.getBoundingClientRect().right))"
        assert await page.do("eval", expr=right) <= 400
        await page.assert_clean()


def test_the_reducer_unit_tests_pass() -> None:
    """web/test/*.test.mjs with `node --test` (the state and its reducer, no browser)."""
    result = subprocess.run(
        [require_node(), "--test", "web/test/"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout
