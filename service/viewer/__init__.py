"""The web viewer's files (``GET /viewer``): ``static/index.html`` and the bundle ``static/viewer.js``, built from
``src/main.js`` with the pinned packages of ``package-lock.json`` (three.js, esbuild): ``npm ci && npm run build``
in this folder. The bundle is committed so the service and its tests need no Node.js."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
