"""Settings of the stories view (newsflow-web), from NEWSFLOW_WEB_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from newsflow.settings import env


@dataclass(frozen=True)
class WebSettings:
    host: str = env("NEWSFLOW_WEB_HOST", "127.0.0.1", "address the stories view listens on")
    port: int = env(
        "NEWSFLOW_WEB_PORT", 8080, "port of the stories view (API and page)", minimum=1, maximum=65535
    )
    db: str = env(
        "NEWSFLOW_WEB_DB", ".cache/web/stories.sqlite3", "the view's SQLite database (kept across restarts)"
    )
