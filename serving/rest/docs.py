"""GET /docs: Swagger UI from the package's own copy of its assets (fastapi-offline ships them), so the
page works without reaching a CDN."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

PATH = "/docs"
ASSETS = "/docs/assets"
_STATIC = (
    Path(fastapi_offline.__file__).parent / "static"
)  # swagger-ui-bundle.js, swagger-ui.css, favicon.png


def add_docs(app: FastAPI, *, title: str, openapi_url: str = "/openapi.json") -> None:
    """Serve Swagger UI at PATH over `openapi_url`, its assets under ASSETS."""
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )

    app.add_route(PATH, docs, methods=["GET"], include_in_schema=False)
