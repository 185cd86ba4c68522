"""The web console: its sources in ``web/`` (React and TypeScript, with a client typed from the server's own OpenAPI
document, generated at build time so the two cannot drift) and the assets ``make`` builds from them into ``dist/``,
which the Python package carries and ``tuneforge serve`` serves at ``/console``."""

from __future__ import annotations

from pathlib import Path

DIST = Path(__file__).with_name("dist")


def built() -> Path | None:
    """The folder of built assets, or None when the console was not built (no Node.js where the package was made)."""
    return DIST if (DIST / "index.html").is_file() else None
