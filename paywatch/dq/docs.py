"""The run's Data Docs in its report folder, self-contained: nothing loaded from the internet.

Great Expectations writes pages that load Bootstrap, jQuery, popper, bootstrap-table,
bootstrap-datepicker and Font Awesome from CDNs, Vega from another, its logo from its own web
assets, and end in a newsletter link. A page holding payroll data must not run third-party
scripts, and a report must open offline. So the copied site gets:

- the libraries GX links, vendored at the versions it links (`static/vendor/`, each with its
  licence; see its README), written into `data_docs/static/vendor/`, every CDN link rewritten to
  the relative local path (SRI and `crossorigin` attributes dropped: on `file:` a cross-origin
  request is refused);
- links to assets not vendored removed (Vega: no Paywatch expectation draws a chart; the
  dark-mode stylesheet); GX's web logo replaced by the copy GX ships; the newsletter footer
  removed, GX's home link pointed at the site's index;
- a bar on every page leading back to the Finance data-quality page (`finance_dq.html`), which
  explains the results in Finance's words.

`offline_check` lists whatever a page would still load from the network; the site is refused
(DocsError) when anything is left, so a new GX release linking a new CDN is noticed at once:
`paywatch.dq.publish` then writes the run without Data Docs (the Finance page says the technical
detail is not available) and logs a warning, rather than a page that loads from the web.
GX's own working site (`gx/uncommitted/data_docs/local_site`, the latest run) is made offline
in place the same way when the run is published (`make_offline`, without the bar).
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from paywatch.paths import make_private_dir, write_private

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
FINANCE_PAGE = "finance_dq.html"

# CDN address GX links -> file under static/vendor/ (same library, same version)
VENDORED = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/bootstrap-table.min.js",
    # GX links 1.19.0's stylesheet of the extension beside 1.19.1's script: one version serves both
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.1/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/filter-control/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
}
DROPPED = {
    "https://cdn.jsdelivr.net/npm/vega@5",
    "https://cdn.jsdelivr.net/npm/vega-lite@5",
    "https://cdn.jsdelivr.net/npm/vega-embed@6",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
}

_TAG = re.compile(r"""<(script|link)\b[^>]*?\b(?:src|href)=["'](https?://[^"']+)["'][^>]*>(?:\s*</script>)?""",
                  re.IGNORECASE)
_GX_LOGO = re.compile(r"""https://great-expectations-web-assets\.s3\.[^"')\s]*?\.png(?:\?[^"')\s]*)?""")
_FOOTER = re.compile(r"<footer>\s*<p>Stay current on everything GX.*?</footer>", re.DOTALL)
_HOME = re.compile(r"""href=["']https://greatexpectations\.io/?["']""")
# GX writes some local links with the wrong depth (the favicon of a validation page: one `../`
# short); every link to the site's static folder is given the page's real depth
_STATIC = re.compile(r"""(\b(?:src|href)=["']|url\(\s*["']?)(?:\.\./|\./)*static/""")
_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)
# what a page would fetch from the network: tags with a remote src/href (anchors excepted,
# nothing is fetched before a click), CSS url(...), @import
_REMOTE = re.compile(r"""<(?!a\b)[a-z]+\b[^>]*\b(?:src|href|srcset|data|poster)=["']?(?:https?:)?//"""
                     r"""|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:https?:)?//""", re.IGNORECASE)
_REMOTE_ANCHOR = re.compile(r"""<a\b[^>]*\bhref=["']?(?:https?:)?//""", re.IGNORECASE)
_BACK_BAR = ('<div style="background:#1f4e79;color:#fff;padding:6px 14px;font:14px Segoe UI,Helvetica,Arial,'
             'sans-serif"><a href="{href}" style="color:#fff;text-decoration:underline">&larr; Data-quality report '
             'for Finance</a> &middot; Below: the technical detail of every check, as Great Expectations '
             'reports it.</div>')


class DocsError(RuntimeError):
    """The Data Docs site would still load something from the network."""


def _local_tag(kind: str, rel: str) -> str:
    rel = html.escape(rel, quote=True)
    if kind.lower() == "script":
        return f'<script src="{rel}"></script>'
    return f'<link rel="stylesheet" href="{rel}">'


def offline_page(text: str, depth: int, back_bar: bool = True) -> str:
    """One GX page with every CDN link made local (`depth`: folders between the site root and
    the page), remote assets dropped, the GX footer removed and the bar back to Finance's page."""
    up = "../" * depth

    def tag(m: re.Match) -> str:
        url = m.group(2)
        if url in VENDORED:
            return _local_tag(m.group(1), f"{up}static/vendor/{VENDORED[url]}")
        if url in DROPPED:
            return ""
        return m.group(0)  # unknown: left for offline_check to name

    text = _TAG.sub(tag, text)
    text = _GX_LOGO.sub(f"{up}static/images/logo-long.png", text)
    text = _STATIC.sub(lambda m: f"{m.group(1)}{up}static/", text)
    text = _FOOTER.sub("", text)
    text = _HOME.sub(f'href="{up}index.html"', text)
    if not back_bar or f"../{FINANCE_PAGE}\"" in text:
        return text
    bar = _BACK_BAR.format(href=html.escape(f"{up}../{FINANCE_PAGE}", quote=True))
    return _BODY.sub(lambda m: m.group(0) + bar, text, count=1)


def offline_check(site: Path) -> list[str]:
    """'<page>: <what>' for everything a page of `site` would load from (or link to on) the network."""
    problems = []
    for page in sorted(site.rglob("*.html")) + sorted(site.rglob("*.css")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for rx in (_REMOTE, _REMOTE_ANCHOR):
            for m in rx.finditer(text):
                problems.append(f"{page.relative_to(site).as_posix()}: {text[m.start():m.start() + 120]}")
    return problems


def _copy_private(src: Path, dest: Path, ignore=None) -> None:
    """Every file of `src` into `dest`, owner-only (report folders hold payroll data)."""
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if f.is_dir() or (ignore is not None and ignore(rel)):
            continue
        make_private_dir((dest / rel).parent)
        write_private(dest / rel, f.read_bytes())


_SKIP = {"iterative-dev-loop.png", "paywatch_run.json"}


def make_offline(site: Path, back_bar: bool = True) -> None:
    """`site` rewritten in place to load nothing from the network: the vendored assets into
    `static/vendor/`, every page and stylesheet made local (idempotent). DocsError naming what
    is left otherwise. `back_bar`: pages lead back to `../finance_dq.html` (the report folder)."""
    _copy_private(VENDOR, site / "static" / "vendor")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = offline_page(text, len(page.relative_to(site).parts) - 1, back_bar=back_bar)
        if new != text:
            write_private(page, new.encode("utf-8"))
    for sheet in (site / "static" / "styles").glob("*.css"):  # url(...) relative to the stylesheet
        text = sheet.read_text(encoding="utf-8")
        new = _GX_LOGO.sub("../images/logo-long.png", text)
        if new != text:
            write_private(sheet, new.encode("utf-8"))
    left = offline_check(site)
    if left:
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        raise DocsError(f"{site}: Data Docs would load from the network: {left[0]}{more}")


def publish_site(site: Path, dest: Path) -> Path:
    """GX's site `site` into `dest` (replaced), offline (`make_offline`), without GX's large
    tutorial images. Returns the index page."""
    if dest.exists():
        shutil.rmtree(dest)
    _copy_private(site, dest, ignore=lambda rel: rel.suffix == ".gif" or rel.name in _SKIP)
    make_offline(dest)
    return dest / "index.html"
