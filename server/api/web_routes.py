"""The browser side: the dashboard (web/), its third-party files from web/node_modules, and the favicon.

Third-party browser files come from npm (web/package.json, pinned by web/package-lock.json,
installed by scripts/setup.sh) and are served from web/node_modules under /vendor/ by name, from
an allow-list: nothing is copied into the repository, and nothing is loaded from a CDN.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web

from server.api.problem import Problem

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
NODE_MODULES = WEB_DIR / "node_modules"
VENDOR_FILES: dict[str, str] = {
    "socket.io.esm.min.js": "socket.io-client/dist/socket.io.esm.min.js",
    "uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}
CACHE = "public, max-age=3600"
log = structlog.get_logger(__name__)


def missing_vendor_files() -> list[str]:
    """The /vendor/ files not installed (empty once `scripts/setup.sh` ran `npm ci` in web/)."""
    return [name for name, path in VENDOR_FILES.items() if not (NODE_MODULES / path).is_file()]


async def vendor(request: web.Request) -> web.StreamResponse:
    """One allow-listed file of web/node_modules."""
    path = VENDOR_FILES.get(request.match_info["name"])
    if path is None:
        raise Problem(404, "no such vendor file")
    if not (NODE_MODULES / path).is_file():
        raise Problem(503, "browser packages are not installed: run scripts/setup.sh", code="unavailable")
    return web.FileResponse(NODE_MODULES / path, headers={"Cache-Control": CACHE})


async def dashboard(_request: web.Request) -> web.FileResponse:
    """The dashboard page (its token arrives in the URL fragment, never sent to the server)."""
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def favicon(_request: web.Request) -> web.FileResponse:
    """The icon browsers ask for on every page."""
    return web.FileResponse(
        WEB_DIR / "static" / "favicon.svg", headers={"Content-Type": "image/svg+xml", "Cache-Control": CACHE}
    )


def add_routes(app: web.Application) -> None:
    """Register /, /favicon.ico, /static/ and /vendor/{name}."""
    app.router.add_get("/", dashboard)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/vendor/{name}", vendor)
    app.router.add_static("/static/", WEB_DIR / "static")
    app.on_startup.append(_warn_when_missing)


async def _warn_when_missing(_app: web.Application) -> None:
    missing = missing_vendor_files()
    if missing:  # the API works without them; the dashboard and /docs do not
        log.warning("browser_packages_missing", missing=missing, fix="scripts/setup.sh (npm ci in web/)")
