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
    retention_days: float = env(
        "NEWSFLOW_WEB_RETENTION_DAYS",
        30.0,
        "the view deletes stories not updated for this long, with their articles, and articles of "
        "no such story processed that long ago (checked hourly; 0 keeps everything)",
        minimum=0,
    )
