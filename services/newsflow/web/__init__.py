"""The stories view: the output topics folded into SQLite (store), served as a JSON API and HTML
pages (service, pages)."""
