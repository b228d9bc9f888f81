"""``/docs`` works offline: Swagger UI's page, script, style and icon all come from the service itself (the
fastapi-offline package's copy), and the page names no other host."""

from __future__ import annotations

import re

import httpx

# Every URL a page can load: tag attributes, and the document Swagger UI is told to fetch.
URL = re.compile(r"""(?:src|href)="([^"]*)"|\burl: '([^']*)'""")


def test_docs_load_only_the_services_own_urls(rest_url: str) -> None:
    page = httpx.get(f"{rest_url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = {a or b for a, b in URL.findall(page.text)}
    assert "/openapi.json" in urls and any(u.endswith("/swagger-ui-bundle.js") for u in urls), urls
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls  # paths on this service only
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, no validator badge, no fonts
    assert '"validatorUrl": null' in page.text
    kinds = {u: httpx.get(f"{rest_url}{u}") for u in urls}
    assert {u: r.status_code for u, r in kinds.items()} == dict.fromkeys(urls, 200)
    types = {u.rsplit(".", 1)[-1]: r.headers["content-type"].split(";")[0] for u, r in kinds.items()}
    assert (types["js"], types["css"], types["json"]) == ("text/javascript", "text/css", "application/json")


def test_there_is_one_documentation_page(rest_url: str) -> None:
    assert httpx.get(f"{rest_url}/redoc").status_code == 404  # FastAPI's /redoc loads its script from a CDN
