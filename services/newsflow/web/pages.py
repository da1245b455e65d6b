"""Server-rendered HTML of the stories view: a front page of live stories and a page per story.

Plain HTML and CSS with one small script (no build toolchain): the front page re-fetches its
story list every few seconds and swaps it in, so it stays live without a reload; without
JavaScript it is still a complete page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from newsflow.pipeline.headline import untitled_headline

REFRESH_SECONDS = 5

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f6f3;color:#1d1d1b}
header{background:#1d3557;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1rem;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:700;font-size:1.2rem}
header .live{font-size:.8rem;opacity:.8}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem}
form.filters{display:flex;gap:.5rem;margin:.5rem 0 1rem;flex-wrap:wrap}
form.filters input{padding:.35rem .5rem;border:1px solid #bbb;border-radius:4px}
ol.stories{list-style:none;padding:0;margin:0}
ol.stories li{background:#fff;border:1px solid #e2e2dc;border-radius:6px;padding:.7rem 1rem;margin-bottom:.6rem}
ol.stories h2{font-size:1.05rem;margin:0 0 .25rem}
ol.stories h2 a{color:#1d3557;text-decoration:none}
.meta{color:#666;font-size:.85rem}
.tag{display:inline-block;background:#eef1f6;border-radius:3px;padding:0 .35rem;margin:0 .25rem .2rem 0;font-size:.8rem;color:#1d3557;text-decoration:none}
.count{font-weight:700;color:#e63946}
.reports{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}
.report{background:#fff;border:1px solid #e2e2dc;border-radius:6px;padding:.8rem}
.report h3{font-size:1rem;margin:.2rem 0}
.report p{font-size:.9rem;color:#333}
details{margin-top:.4rem;font-size:.85rem}
.empty{color:#666;font-style:italic}
"""

SCRIPT = """
(function(){
  var list=document.getElementById('stories'); if(!list||!list.dataset.src||!window.fetch) return;
  var live=document.getElementById('live');
  setInterval(function(){
    fetch(list.dataset.src,{headers:{'Accept':'text/html'}}).then(function(r){return r.ok?r.text():null})
      .then(function(html){ if(html!==null){ list.outerHTML=html; list=document.getElementById('stories');
        live.textContent='live, updated '+new Date().toLocaleTimeString(); } })
      .catch(function(){ live.textContent='reconnecting'; });
  }, REFRESH_MS);
})();
""".replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))


# The page's one script, allowed by its hash in the Content-Security-Policy (service.py): no other
# script can run, whatever text a record holds.
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()


def _page(title: str, body: str, script: bool = False) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        '<header><a href="/">newsflow</a><span class=live id=live>'
        f"{'live' if script else ''}</span></header><main>{body}</main>"
        + (f"<script>{SCRIPT}</script>" if script else "")
        + "</body></html>"
    )


def _time(value: str | None) -> str:
    return escape((value or "")[:16].replace("T", " ")) if value else "time unknown"


def _entity_tags(keys: Sequence[str]) -> str:
    return "".join(f'<a class=tag href="/?{urlencode({"entity": k})}">{escape(k)}</a>' for k in keys[:8])


def story_list(stories: Sequence[Mapping[str, Any]], src: str | None, next_url: str | None) -> str:
    """Return the front page's list (also served alone, for the live refresh)."""
    items = []
    for s in stories:
        outlets = ", ".join(escape(o) for o in s["outlets"])
        items.append(
            f'<li><h2><a href="/stories/{quote(s["story_id"])}">{escape(s["headline"] or "(no headline)")}</a></h2>'
            f"<div class=meta><span class=count>{s['member_count']}</span> "
            f"report{'s' if s['member_count'] != 1 else ''} from {outlets} · "
            f"{_time(s['first_seen'])} to {_time(s['last_seen'])}"
            f"{' · closed' if s['status'] == 'closed' else ''}</div>"
            f"<div>{_entity_tags(s['top_entities'])}</div></li>"
        )
    more = f'<p><a href="{escape(next_url)}">older stories</a></p>' if next_url else ""
    empty = "" if items else "<p class=empty>No stories yet: they appear here as articles come in.</p>"
    live = f' data-src="{escape(src)}"' if src else ""
    return f"<div id=stories{live}><ol class=stories>{''.join(items)}</ol>{empty}{more}</div>"


def front_page(
    stories: Sequence[Mapping[str, Any]], filters: Mapping[str, str], src: str | None, next_url: str | None
) -> str:
    entity, outlet = escape(filters.get("entity", "")), escape(filters.get("outlet", ""))
    form = (
        '<form class=filters method=get action="/">'
        f'<input name=entity placeholder="entity, e.g. ukraine" value="{entity}">'
        f'<input name=outlet placeholder="outlet" value="{outlet}">'
        '<button type=submit>Filter</button> <a href="/">clear</a></form>'
    )
    return _page("newsflow: live stories", form + story_list(stories, src, next_url), script=src is not None)


def _folded(members: Sequence[Mapping[str, Any]], one: str, many: str) -> str:
    if not members:
        return ""
    rows = "".join(
        f"<li>{escape(c['outlet'])}: {escape(c.get('title') or c['article_id'])}</li>" for c in members
    )
    return f"<details><summary>{len(members)} {one if len(members) == 1 else many}</summary><ul>{rows}</ul></details>"


def _report(
    m: Mapping[str, Any],
    text: str,
    copies: Sequence[Mapping[str, Any]],
    earlier: Sequence[Mapping[str, Any]] = (),
) -> str:
    url = str(m.get("url") or "")
    # Only web links are links: a page's own metadata could say "javascript:...".
    link = (
        f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(url)}</a>'
        if urlsplit(url).scheme in ("http", "https")
        else escape(url)
    )
    revised = " · revised" if earlier else ""
    return (
        f"<article class=report><div class=meta>{escape(m['outlet'])} · {_time(m.get('published') or m.get('processed_at'))}{revised}</div>"
        f"<h3>{escape(m.get('title') or untitled_headline(text) or '(no text)')}</h3><p>{escape(text[:600])}{'…' if len(text) > 600 else ''}</p>"
        f"<div class=meta>{link}</div>{_folded(earlier, 'earlier version', 'earlier versions')}"
        f"{_folded(copies, 'copy', 'copies')}</article>"
    )


def story_page(story: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    """Return a story's page: every outlet's report side by side, in its latest version (an outlet's
    edited report, sent again, stands in for the one it revises, folded under it), copies folded
    under their original."""
    members = story["members"]
    ids = {m["article_id"] for m in members}
    # A revision is usually also a copy of the version it revises: here it is that report, anew.
    # A version that was revised is an outlet's report (in its latest version), even if it
    # copied another's (an outlet republishing a wire story, then correcting it).
    revision = {m["revision_of"]: m for m in members if m.get("revision_of") in ids}
    revisions = {m["article_id"] for m in revision.values()}
    in_a_chain = revisions | revision.keys()
    copies: dict[str, list[Mapping[str, Any]]] = {}
    inside_another = set(revisions)  # later versions and copies: shown inside another report
    for m in members:
        if m.get("copy_of") in ids and m["article_id"] not in in_a_chain:
            copies.setdefault(m["copy_of"], []).append(m)
            inside_another.add(m["article_id"])
    reports = []
    for m in members:
        if m["article_id"] in inside_another:
            continue
        versions = [m]
        while versions[-1]["article_id"] in revision and len(versions) <= len(members):
            versions.append(revision[versions[-1]["article_id"]])
        latest = versions[-1]
        its_copies = [c for v in versions for c in copies.get(v["article_id"], ())]
        reports.append(_report(latest, texts.get(latest["article_id"], ""), its_copies, versions[-2::-1]))
    entities = "".join(
        f'<a class=tag href="/?{urlencode({"entity": e["key"]})}">{escape(e["name"])} ({e["articles"]})</a>'
        for e in story["entities"][:20]
    )
    body = (
        f"<h1>{escape(story['headline'] or '(no headline)')}</h1>"
        f"<p class=meta><span class=count>{story['member_count']}</span> "
        f"{'report' if story['member_count'] == 1 else 'reports'} from "
        f"{', '.join(escape(o) for o in story['outlets'])} · {_time(story['first_seen'])} to "
        f"{_time(story['last_seen'])} · {escape(story['status'])}</p><p>{entities}</p>"
        f"<div class=reports>{''.join(reports)}</div>"
    )
    return _page(story["headline"] or story["story_id"], body)


def bad_request(message: str) -> str:
    return _page("bad request", f"<p class=empty>{escape(message)}</p><p><a href='/'>all stories</a></p>")


def not_found(what: str) -> str:
    return _page(
        "not found", f"<p class=empty>{escape(what)} not found.</p><p><a href='/'>all stories</a></p>"
    )
