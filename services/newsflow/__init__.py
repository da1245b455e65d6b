"""newsflow: streaming news ingest (raw article files in, enriched story-grouped records out)."""

__version__ = "0.1.0"
