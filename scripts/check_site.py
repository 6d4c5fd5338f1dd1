"""Check every page of the built book in a real headless Chromium, as a reader would see it.

Serves ``_build/html`` from a local HTTP server on a free port (127.0.0.1 only), loads EVERY page
of the site (each ``.html`` file outside ``_static``, ``_sources`` and ``_images``) in headless
Chromium, lets the page's JavaScript (MathJax) run, and inspects the rendered DOM. A page fails on:

- a raw Markdown table in its rendered text (``|---|``: a table that was printed, not rendered),
  or a raw Markdown image (``![Open In Colab](data:...)``: an image the parser refused);
- raw TeX in its rendered text (``$x_0$``, ``\\(x\\)``, ``\\frac``... outside math that MathJax
  typeset), or math nodes that MathJax did not typeset, or MathJax loaded from a CDN;
- an image that does not load: a local ``<img>`` not served as a non-empty PNG / JPEG / GIF / SVG,
  or a remote one (the book must read offline);
- a link to a file that is not there: a relative link to a path missing from the site, a link into
  the repository (``github.com/OWNER/REPO/blob|tree/REF/PATH``, Colab's ``.../github/...`` links)
  whose ``PATH`` is not in the repository, or a web address that is a file name (``http://NOTES.md``,
  what linkify makes of a bare file name);
- error text (a Python traceback, ``SomethingError:``, error outputs of executed cells), too little
  text, a 404 title, or (chapter pages) fewer than ``--min-figures`` images;
- a template seam in its prose: a number glued in as a tuple (``(204, 800, 0)``), a Python list
  (``['1/2', '1/4']``, ``[0.5, 0.25, 0.25]``), ``None`` in mid-sentence, or ``step(s)``
  (outside the API reference's entries, where ``None`` and lists are Python);
- a heading number that does not start with its chapter's number (``5.1`` inside chapter 3);
- a table or a display equation wider than the content column at the screenshot width (1280 px by
  default), measured in the browser by a script that the check's own server adds to every page it
  serves (a wide equation scrolls inside its box, so a reader sees it cut off);
- an absolute path of the machine that built it (the repository's folder, a home folder, a
  temporary folder made by Python's ``tempfile``, or any absolute path into the repository's
  folders such as ``/.../book/results``), in prose or in code output.

Two screenshots of every page are written to ``_build/check_site/``, at the desktop width and at a
phone's width (``NAME_400.png``), for a person to look at. The
detectors are plain functions of the page's HTML (``tests/test_check_site.py`` tests them on small
fixtures). Needs the Debian package ``chromium``; PyYAML (a dependency of the package) and the
standard library otherwise. Exits 1 with one line per problem on failure, 2 if Chromium is missing.

    python scripts/check_site.py                       # every page
    python scripts/check_site.py --page notebooks/03_shortcut_models.html
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import html
import html.parser
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]
NOT_PAGES = ("_static", "_sources", "_images")
# Pages that are lists or tools, not reading: the "too little text" check does not apply.
TOOL_PAGES = ("genindex.html", "search.html", "py-modindex.html")
# Text that must never appear in a rendered page.
ERROR_PATTERNS = [
    (re.compile(r"Traceback \(most recent call last\)"), "a Python traceback"),
    (re.compile(r"\b[A-Z]\w*(Error|Exception):"), "an exception message"),
    (re.compile(r"\bCellExecutionError\b|\bDeadKernelError\b"), "a notebook execution error"),
]
# Classes myst-nb gives to error outputs of executed cells.
ERROR_CLASSES = ("output error", "output traceback")
# A library's warning printed into a cell's stderr output (a missing font, a deprecation): noise
# for a reader, and a sign of something to fix in the build or the chapter.
LIBRARY_WARNING = re.compile(r"findfont: |\b\w*Warning: |^WARNING[: ]", re.MULTILINE)
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"<svg", b"<?xml")

# A Markdown table's delimiter row, e.g. |---|---:| or | :--- | --- |, seen as text.
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")
# A Markdown image, ![alt](address), seen as text (e.g. an address the parser refused).
RAW_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(\S{1,200}")
# $...$ holding TeX (a subscript, superscript, command or brace), and $$...$$.
RAW_DOLLAR = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]{1,300}?)(?<=\S)\$(?![\w$])")
RAW_DISPLAY = re.compile(r"\$\$.{1,2000}?\$\$", re.S)
RAW_DELIMITED = re.compile(r"\\\(.{1,300}?\\\)|\\\[.{1,2000}?\\\]", re.S)
TEX_COMMAND = re.compile(
    r"\\(frac|tfrac|dfrac|mathbf|mathrm|mathcal|mathbb|boldsymbol|operatorname|sqrt|sum|int|"
    r"alpha|beta|gamma|delta|epsilon|theta|sigma|lambda|mu|nabla|partial|cdot|left|right|"
    r"begin|end|text)\b"
)
FILE_HOST = re.compile(
    r"\.(md|py|ipynb|jsonl?|ya?ml|toml|txt|csv|cfg|ini|sh|png|jpe?g|svg|pdf|bib|pt|pth|npz|log)$",
    re.I,
)

# Template seams: what a formatted value looks like when it was glued or printed raw.
TUPLE_NUMBER = re.compile(r"\(\d+(?:, \d+)+\)")
_ITEM = r"""(?:'[^'\n]{0,40}'|"[^"\n]{0,40}"|-?\d+(?:\.\d+)?(?:e-?\d+)?)"""
# A list of quoted strings, or of three or more numbers ("[0, 1]" is an interval, not a seam).
PY_LIST = re.compile(
    rf"\[\s*(?:'[^'\n]{{0,40}}'|\"[^\"\n]{{0,40}}\")\s*(?:,\s*{_ITEM}\s*)*\]|"
    rf"\[\s*{_ITEM}\s*(?:,\s*{_ITEM}\s*){{2,}}\]"
)
MID_SENTENCE_NONE = re.compile(r"(?<![.!?]\s)(?<!^)\bNone\b")
OPTIONAL_PLURAL = re.compile(r"\w\(s\)")
# A heading's leading number: "3.2 Title", "5.1. Title", "2. Title".
HEADING_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)*)\.?\s")
CHAPTER_TITLE = re.compile(r"^\s*(\d+)\.\s+\S")
# Folders of the repository: an absolute path that runs into one of them is a build path.
REPO_FOLDERS = (
    "book", "notebooks", "shortcut_mini", "benchmarks", "scripts", "tests", "_build", ".venv",
    "site-packages",
)  # fmt: skip
BUILD_PATH = re.compile(
    r"(?<![\w.~:/-])(?:"
    r"(?:/[\w.+-]+)+/(?:" + "|".join(re.escape(f) for f in REPO_FOLDERS) + r")(?=[/\s'\")\],:;]|$)"
    r"|/(?:home|Users)/[\w.-]+/[\w.-]+"
    r"|/root/[\w.-]+"
    r"|/(?:tmp|var/tmp|var/folders/[\w/]+?|private/var/folders/[\w/]+?)/(?:tmp|[\w.-]*[-_])[a-z0-9_]{8}\b"
    r")"
)
# The measurement the check's server adds to each page: after the page's scripts ran, it records
# the content column's width, every table wider than it and every display equation wider than it
# (or than its own box, which then scrolls) on <html data-check-site="{...}">.
MEASURE_ATTR = "data-check-site"
MEASURE_SCRIPT = """<script>
(function () {
  function measure() {
    var col = document.querySelector("article.bd-article") || document.querySelector("main")
      || document.body;
    var style = getComputedStyle(col);
    var width = col.getBoundingClientRect().width - parseFloat(style.paddingLeft || 0)
      - parseFloat(style.paddingRight || 0);
    var wide = [];
    var tables = col.querySelectorAll("table");
    tables.forEach(function (t) {
      var w = Math.max(t.getBoundingClientRect().width, t.scrollWidth);
      if (w > width + 1) {
        wide.push({width: Math.round(w), text: (t.innerText || "").replace(/\\s+/g, " ").slice(0, 60)});
      }
    });
    // display equations: the book's CSS lets a wide one scroll inside its box, cut off to the eye
    var wideMath = [];
    var equations = Array.prototype.filter.call(
      col.querySelectorAll('mjx-container[display="true"], div.math'),
      function (m) { return !(m.matches("div.math") && m.querySelector("mjx-container")); });
    equations.forEach(function (m) {
      var w = Math.max(m.getBoundingClientRect().width, m.scrollWidth);
      if (w > width + 1 || m.scrollWidth > m.clientWidth + 1) {
        var label = m.querySelector("mjx-assistive-mml") || m;
        wideMath.push({width: Math.round(w),
          text: (label.textContent || "").replace(/\\s+/g, " ").slice(0, 60)});
      }
    });
    document.documentElement.setAttribute("data-check-site", JSON.stringify(
      {viewport: window.innerWidth, column: Math.round(width), tables: tables.length, wide: wide,
       equations: equations.length, wide_math: wideMath}));
  }
  window.addEventListener("load", function () { setTimeout(measure, 4000); });
})();
</script>"""

VOID_TAGS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
# Elements whose text a reader does not see as prose: code, scripts, typeset math.
CODE_TAGS = {"pre", "code", "kbd", "samp", "textarea"}
HIDDEN_TAGS = {"script", "style", "noscript", "template", "svg"}


@dataclass
class PageScan:
    """What :class:`DomScan` found in one page."""

    images: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    mjx: int = 0
    math_nodes: int = 0
    error_outputs: int = 0
    title: str = ""
    text: str = ""  # all visible text, code included (for error messages)
    prose: str = ""  # visible text outside code and math (for raw tables and raw TeX)
    seam_prose: str = ""  # prose outside Python API entries, where None and lists are Python
    stderr: str = ""  # what executed cells printed to stderr (line breaks kept)
    headings: list[tuple[int, str]] = field(default_factory=list)  # (level, text) in order
    measure: dict | None = None  # what MEASURE_SCRIPT recorded (None: the page was not measured)


class DomScan(html.parser.HTMLParser):
    """Collect images, scripts, links, MathJax output, error outputs, visible text and prose."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.result = PageScan()
        self._stack: list[tuple[str, str]] = []  # (tag, "hidden" | "code" | "")
        self._text: list[str] = []
        self._prose: list[str] = []
        self._seam_prose: list[str] = []
        self._stderr: list[str] = []
        self._in_title = False
        self._heading: tuple[int, list[str]] | None = None

    def _state(self) -> set[str]:
        return {kind for _, kind in self._stack if kind}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        r = self.result
        if tag == "img" and a.get("src"):
            r.images.append(a["src"])
        elif tag == "script" and a.get("src"):
            r.scripts.append(a["src"])
        elif tag == "a" and a.get("href"):
            r.links.append(a["href"])
        elif tag == "mjx-container":
            r.mjx += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "html" and a.get(MEASURE_ATTR):
            try:
                r.measure = json.loads(a[MEASURE_ATTR])
            except ValueError:
                r.measure = {"error": a[MEASURE_ATTR][:80]}
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = (int(tag[1]), [])
        if "headerlink" in classes:  # the "#" anchor after a heading's text
            self._stack.append((tag, "hidden"))
            return
        if "math" in classes:
            r.math_nodes += 1
        if any(err in " ".join(classes) for err in ERROR_CLASSES):
            r.error_outputs += 1
        if tag in VOID_TAGS:
            return
        if tag in HIDDEN_TAGS or tag.startswith("mjx-") or tag == "math":
            kind = "hidden"
        elif "output" in classes and "stderr" in classes:
            kind = "stderr"
        elif tag in CODE_TAGS or "math" in classes or "highlight" in classes:
            kind = "code"
        elif tag == "dl" and "py" in classes:  # an autodoc entry: signature, types, docstring
            kind = "api"
        else:
            kind = ""
        self._stack.append((tag, kind))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if self._heading and tag == f"h{self._heading[0]}":
            level, parts = self._heading
            self.result.headings.append((level, " ".join("".join(parts).split())))
            self._heading = None
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        if self._in_title:
            self.result.title += data
        state = self._state()
        if "hidden" in state:
            return
        if self._heading:
            self._heading[1].append(data)
        self._text.append(data)
        if "stderr" in state:
            self._stderr.append(data)
        if not state - {"api"}:
            self._prose.append(data)
        if not state:
            self._seam_prose.append(data)

    def close(self) -> PageScan:
        super().close()
        self.result.text = " ".join(" ".join(self._text).split())
        self.result.prose = " ".join(" ".join(self._prose).split())
        self.result.seam_prose = " ".join(" ".join(self._seam_prose).split())
        self.result.stderr = "".join(self._stderr)
        return self.result


def scan_html(text: str) -> PageScan:
    """Scan one page's HTML (a DOM that Chromium dumped, or a file)."""
    parser = DomScan()
    parser.feed(text)
    return parser.close()


def _context(text: str, match: re.Match, width: int = 50) -> str:
    return text[max(0, match.start() - width) : match.end() + width]


def raw_markdown_tables(prose: str) -> list[str]:
    """Problems for each Markdown table delimiter row (``|---|``) or image (``![a](b)``) seen as
    rendered text."""
    found = [f"a raw Markdown table: ...{_context(prose, m)}..." for m in RAW_TABLE.finditer(prose)]
    return found + [
        f"a raw Markdown image: ...{_context(prose, m)[:160]}..." for m in RAW_IMAGE.finditer(prose)
    ]


def raw_tex(prose: str) -> list[str]:
    """Problems for TeX that was not typeset: ``$x_0$``, ``$$..$$``, ``\\(..\\)``, ``\\frac``..."""
    found = []
    for m in RAW_DOLLAR.finditer(prose):
        if re.search(r"[_^\\{}]", m.group(1)):
            found.append(m)
    found += list(RAW_DISPLAY.finditer(prose))
    found += list(RAW_DELIMITED.finditer(prose))
    found += list(TEX_COMMAND.finditer(prose))
    found.sort(key=lambda m: m.start())
    return [f"raw TeX in the text: ...{_context(prose, m)}..." for m in found]


def error_text(text: str) -> list[str]:
    """Problems for tracebacks and exception messages in the page's visible text."""
    problems = []
    for pattern, what in ERROR_PATTERNS:
        match = pattern.search(text)
        if match:
            problems.append(f"shows {what}: ...{_context(text, match, 60)}...")
    return problems


def template_seams(prose: str) -> list[str]:
    """Problems for values that were glued or printed raw into the prose.

    A tuple of numbers (``(204, 800, 0)``: a grouped number read back by ``literal_eval``), a
    Python list (``['1/2', '1/4']``, ``[0.5, 0.25]``), ``None`` in mid-sentence, and the
    template plural ``step(s)``.
    """
    found = [(m, "a number printed as a tuple") for m in TUPLE_NUMBER.finditer(prose)]
    found += [(m, "a Python list") for m in PY_LIST.finditer(prose)]
    found += [(m, "None in a sentence") for m in MID_SENTENCE_NONE.finditer(prose)]
    found += [(m, "a template plural") for m in OPTIONAL_PLURAL.finditer(prose)]
    found.sort(key=lambda f: f[0].start())
    return [f"{what} in the prose: ...{_context(prose, m)}..." for m, what in found]


def heading_problems(headings: list[tuple[int, str]]) -> list[str]:
    """Problems for section numbers that do not start with the chapter's number.

    Applies to pages whose first ``h1`` is numbered (``3. Shortcut models``): every numbered
    heading below it must read ``3.N ...`` (``3.5.1 ...`` for a subsection).
    """
    titles = [text for level, text in headings if level == 1]
    chapter = CHAPTER_TITLE.match(titles[0]) if titles else None
    if not chapter:
        return []
    number = chapter.group(1)
    problems = []
    for level, text in headings:
        if level == 1:
            continue
        found = HEADING_NUMBER.match(text)
        if found and not found.group(1).startswith(f"{number}."):
            problems.append(
                f"heading {text[:60]!r} is numbered {found.group(1)}, not under chapter {number}"
            )
    return problems


def wide_tables(measure: dict | None) -> list[str]:
    """Problems for tables and display equations wider than the content column, from what
    ``MEASURE_SCRIPT`` recorded."""
    if measure is None:
        return []
    if "error" in measure:
        return [f"the table measurement could not be read: {measure['error']}"]
    tables = [
        f"a table is {t['width']} px wide, the content column {measure['column']} px at a "
        f"{measure['viewport']} px window: {t['text']!r}"
        for t in measure.get("wide", [])
    ]
    return tables + [
        f"a display equation is {m['width']} px wide, the content column {measure['column']} px "
        f"at a {measure['viewport']} px window (break it over lines): {m['text']!r}"
        for m in measure.get("wide_math", [])
    ]


def build_paths(text: str, roots: tuple[str, ...] = ()) -> list[str]:
    """Problems for absolute paths of the machine that built the page.

    ``roots`` are paths known to be that machine's (the repository's folder); besides them, a home
    folder, a ``tempfile`` folder, or any absolute path that runs into a repository folder.
    """
    found = list(BUILD_PATH.finditer(text))
    for root in roots:
        if len(root) > 1:
            found += list(re.finditer(re.escape(root) + r"(?=[/\s]|$)", text))
    seen, problems = set(), []
    for m in sorted(found, key=lambda m: m.start()):
        if m.start() in seen:
            continue
        seen.add(m.start())
        problems.append(
            f"shows a path of the build machine {m.group(0)!r}: ...{_context(text, m)}..."
        )
    return problems


def repository_path(url: str, repo_url: str) -> str | None:
    """The path inside the repository that ``url`` points to (blob / tree / Colab), else None."""
    parsed = urllib.parse.urlsplit(url)
    repo = urllib.parse.urlsplit(repo_url.rstrip("/"))
    owner_repo = repo.path.strip("/")
    path = urllib.parse.unquote(parsed.path)
    if parsed.netloc == repo.netloc and path.startswith(f"/{owner_repo}/"):
        rest = path[len(owner_repo) + 2 :].split("/")
    elif parsed.netloc == "colab.research.google.com" and path.startswith(f"/github/{owner_repo}/"):
        rest = path[len(owner_repo) + 9 :].split("/")
    else:
        return None
    if len(rest) >= 3 and rest[0] in ("blob", "tree", "raw"):
        return "/".join(rest[2:])
    return None


def link_problems(
    links: list[str], page: str, html_dir: Path, repo_root: Path, repo_url: str
) -> list[str]:
    """Problems for links to files that are neither in the site nor in the repository.

    ``page`` is the page's path under ``html_dir``. Relative links must name a file of the site;
    links into the repository (``repo_url``'s ``blob``/``tree`` pages and Colab's ``github`` links)
    must name a path of ``repo_root``; a web address whose host is a file name is always wrong.
    """
    problems = []
    page_dir = (html_dir / page).parent
    for href in dict.fromkeys(links):
        parsed = urllib.parse.urlsplit(href)
        if parsed.scheme in ("mailto", "javascript", "data", "tel"):
            continue
        if parsed.scheme == "file":
            problems.append(f"links to a local file: {href}")
        elif parsed.scheme in ("http", "https"):
            if FILE_HOST.search(parsed.netloc):
                problems.append(f"links to {href}, a file name made into a web address")
                continue
            inside = repository_path(href, repo_url)
            if inside is not None and inside and not (repo_root / inside).exists():
                problems.append(f"links to {inside}, which is not in the repository ({href})")
        elif not parsed.scheme and not parsed.netloc and parsed.path:
            target = (page_dir / urllib.parse.unquote(parsed.path)).resolve()
            if parsed.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"links to {parsed.path}, which is not in the site")
    return problems


def image_problems(images: list[str], page_url: str, base: str, fetch) -> list[str]:
    """Problems for images that do not load: remote ones, and local ones not served as images.

    ``fetch(url)`` returns ``(status, body)``; it is only called for images under ``base``.
    """
    problems = []
    for src in dict.fromkeys(images):
        if src.startswith("data:image/"):
            continue
        full = urllib.parse.urljoin(page_url, src)
        if not full.startswith(base):
            problems.append(f"image {src} is remote: it does not load offline (make it local)")
            continue
        status, body = fetch(full)
        if status != 200 or not body:
            problems.append(f"image {src} does not load (status {status}, {len(body)} bytes)")
        elif not body.lstrip()[:5].startswith(IMAGE_MAGIC) and b"<svg" not in body[:500]:
            problems.append(f"image {src} is not a PNG/JPEG/GIF/SVG file")
    return problems


def dom_problems(
    scan: PageScan,
    page: str,
    *,
    html_dir: Path,
    repo_root: Path,
    repo_url: str,
    min_figures: int = 1,
) -> list[str]:
    """Every problem that the rendered DOM of ``page`` shows, except image loading."""
    problems = []
    if "404" in scan.title or "not found" in scan.title.lower():
        problems.append(f"page not found (title {scan.title.strip()!r})")
    reading = not page.startswith("_modules/") and Path(page).name not in TOOL_PAGES
    if reading and len(scan.text) < 200:
        problems.append(f"almost no text rendered ({len(scan.text)} characters)")
    if not page.startswith("_modules/"):  # source listings show `except ValueError:` legitimately
        problems += error_text(scan.text)
    if scan.error_outputs:
        problems.append(f"{scan.error_outputs} error output(s) of executed cells")
    warning = LIBRARY_WARNING.search(scan.stderr)
    if warning:
        line = scan.stderr[warning.start() :].splitlines()[0][:120]
        problems.append(f"a cell's output shows a library warning: {line!r}")
    problems += raw_markdown_tables(scan.prose)
    problems += raw_tex(scan.prose)
    problems += template_seams(scan.seam_prose)
    problems += heading_problems(scan.headings)
    problems += wide_tables(scan.measure)
    problems += build_paths(scan.text, (str(repo_root), str(repo_root.resolve())))
    remote_mathjax = [s for s in scan.scripts if "mathjax" in s.lower() and "://" in s]
    if remote_mathjax:
        problems.append(f"MathJax loaded from the network: {remote_mathjax[0]}")
    if scan.math_nodes and not scan.mjx:
        problems.append("has math but MathJax rendered none (no mjx-container)")
    if page.startswith("notebooks/") and len(scan.images) < min_figures:
        problems.append(f"expected at least {min_figures} figure(s), found {len(scan.images)}")
    problems += link_problems(scan.links, page, html_dir, repo_root, repo_url)
    return problems


REDIRECT = re.compile(
    r"""<meta[^>]+http-equiv=["']?refresh["']?[^>]+content=["']?\s*\d+\s*;\s*url=([^"'>\s]+)""",
    re.I,
)


def redirect_target(page: str, text: str) -> str | None:
    """The page that ``page`` redirects to with a ``<meta http-equiv="refresh">``, else None."""
    match = REDIRECT.search(text)
    if not match:
        return None
    target = urllib.parse.urljoin("/" + page, match.group(1).strip())
    return urllib.parse.urlsplit(target).path.lstrip("/")


def site_pages(html_dir: Path) -> list[str]:
    """Every page of the built site: its ``.html`` files outside static, source and image folders."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] not in NOT_PAGES:
            pages.append(rel.as_posix())
    return pages


def read_repo_url(root: Path = ROOT) -> str:
    """``repository: url:`` from ``_config.yml`` (empty when absent)."""
    import yaml

    try:
        cfg = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ""
    return str((cfg.get("repository") or {}).get("url") or "").removesuffix(".git")


def find_chromium() -> str | None:
    """Path of a Chromium binary (``$CHROMIUM`` wins), or None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site; adds :data:`MEASURE_SCRIPT` to every HTML page (only for this check)."""

    def log_message(self, format, *args):
        pass

    def send_head(self):
        narrow = NARROW_PAGE.match(urllib.parse.urlsplit(self.path).path)
        if narrow:  # a page shown in a frame of the given width (see narrow_url)
            width, page = narrow.groups()
            body = NARROW_FRAME.format(width=width, page=html.escape(page, quote=True)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_bytes()
        script = MEASURE_SCRIPT.encode()
        end = body.rfind(b"</body>")
        body = body[:end] + script + body[end:] if end >= 0 else body + script
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


# Headless Chromium does not make a window narrower than 500 px, so a phone's width is shown by
# framing the page: the frame is the page's viewport, of exactly the width asked for.
NARROW_PAGE = re.compile(r"^/__check_site_width__/(\d+)/(.+)$")
NARROW_FRAME = (
    "<!DOCTYPE html><html><head><title>narrow</title><style>html, body {{ margin: 0; "
    "background: #888; }} iframe {{ border: 0; width: {width}px; height: 100vh; "
    "background: white; display: block; }}</style></head>"
    '<body><iframe src="/{page}"></iframe></body></html>'
)


def narrow_url(base: str, page: str, width: int) -> str:
    """The URL that shows ``page`` in a viewport ``width`` CSS pixels wide (a framed page)."""
    return f"{base}__check_site_width__/{width}/{page}"


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``directory`` on 127.0.0.1 at a free port in a daemon thread; return (server, url)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def chromium(binary: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile directory."""
    with tempfile.TemporaryDirectory(prefix="check-site-chromium-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def fetch(url: str) -> tuple[int, bytes]:
    """GET ``url`` (local server only); return (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def check_page(binary: str, base: str, page: str, shots: Path, args) -> list[str]:
    """Load one page in Chromium, check its DOM, screenshot it; return its problems."""
    url = base + page
    # A redirect page (index.html -> book/intro.html) shows its target: links resolve from there.
    shown = redirect_target(page, (args.build / "html" / page).read_text(errors="replace")) or page
    try:
        proc = chromium(
            binary,
            [
                f"--virtual-time-budget={args.budget_ms}",
                f"--window-size={args.window}",
                "--dump-dom",
                url,
            ],
            timeout=args.timeout,
        )
    except subprocess.TimeoutExpired:
        return [f"{page}: Chromium did not finish within {args.timeout} s"]
    if proc.returncode != 0 or "<html" not in proc.stdout:
        tail = proc.stderr.strip().splitlines()[-3:]
        return [f"{page}: Chromium failed (exit {proc.returncode}): {' | '.join(tail)}"]

    scan = scan_html(proc.stdout)
    problems = dom_problems(
        scan,
        shown,
        html_dir=args.build / "html",
        repo_root=args.repo,
        repo_url=args.repo_url,
        min_figures=args.min_figures,
    )
    problems += image_problems(scan.images, base + shown, base, fetch)

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", page).removesuffix(".html")
    windows = [(args.window, shots / f"{name}.png", url)]
    reading = not page.startswith("_modules/") and Path(page).name not in TOOL_PAGES
    if args.narrow_window and reading:  # source listings and the index: desktop width only
        width, height = (int(v) for v in args.narrow_window.split(","))
        windows.append(
            (
                f"{max(width, 500)},{height}",
                shots / f"{name}_{width}.png",
                narrow_url(base, page, width),
            )
        )
    for window, shot, shot_url in windows:
        try:
            proc = chromium(
                binary,
                [
                    f"--virtual-time-budget={args.budget_ms}",
                    f"--window-size={window}",
                    f"--screenshot={shot}",
                    shot_url,
                ],
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            problems.append(f"no screenshot at {window} within {args.timeout} s")
            continue
        if not shot.exists() or shot.stat().st_size == 0:
            problems.append(f"no screenshot written at {window} ({proc.stderr.strip()[-200:]})")
    print(
        f"{page}: {len(scan.text)} chars, {len(scan.images)} image(s), {len(scan.links)} "
        f"link(s), {scan.mjx} MathJax element(s), {len(problems)} problem(s)",
        flush=True,
    )
    return [f"{page}: {p}" for p in problems]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "_build", help="jupyter-book _build")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the repository's root")
    parser.add_argument("--page", action="append", help="only this page (repeatable)")
    parser.add_argument("--min-figures", type=int, default=1, help="per chapter page")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time for JS")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per Chromium run")
    parser.add_argument(
        "--window", default="1280,1600", help="window W,H: the DOM check and first screenshot"
    )
    parser.add_argument(
        "--narrow-window", default="400,1600", help="second screenshot W,H ('' for none)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="pages checked at once")
    args = parser.parse_args(argv)
    args.repo_url = read_repo_url(args.repo)

    html_dir = args.build / "html"
    if not (html_dir / "index.html").exists():
        print(f"check_site: {html_dir}/index.html not found; build the book first", file=sys.stderr)
        return 1
    binary = find_chromium()
    if binary is None:
        print(
            "check_site: Chromium not found; install it with "
            "`apt-get install -y chromium` (or set $CHROMIUM)",
            file=sys.stderr,
        )
        return 2
    pages = args.page or site_pages(html_dir)
    missing = [p for p in pages if not (html_dir / p).exists()]
    if missing:
        print(f"check_site: {html_dir / missing[0]} does not exist", file=sys.stderr)
        return 1
    shots = args.build / "check_site"
    shots.mkdir(parents=True, exist_ok=True)

    server, base = serve(html_dir)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = pool.map(lambda p: check_page(binary, base, p, shots, args), pages)
            problems = [p for page_problems in results for p in page_problems]
    finally:
        server.shutdown()
        server.server_close()
    if problems:
        for problem in problems:
            print(f"check_site: FAIL {problem}", file=sys.stderr)
        print(f"check_site: {len(problems)} problem(s) in {len(pages)} page(s)", file=sys.stderr)
        return 1
    print(f"check_site: OK ({len(pages)} page(s); screenshots in {shots})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
