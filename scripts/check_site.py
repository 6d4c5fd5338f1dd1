"""Check the built book in a real headless Chromium: figures present, math rendered, no errors.

Serves ``_build/html`` from a local HTTP server on a free port (127.0.0.1 only), loads the index
and one chapter (or the pages given with ``--page``) in headless Chromium, lets the page's
JavaScript (MathJax) run, and inspects the rendered DOM:

- every page: no error text (a Python traceback, ``SomethingError:``, notebook execution error
  output) and the book's own chrome (title, navigation) present;
- chapter pages: at least ``--min-figures`` images, every local ``<img>`` served with status 200
  as a non-empty PNG / JPEG / GIF / SVG file; math rendered by MathJax (``mjx-container``
  elements) when the page has math, and MathJax loaded from the book itself, not a CDN;
- a screenshot of each page is written to ``_build/check_site/`` for a person to look at.

Needs the Debian packages ``chromium`` (and, for selenium users, ``chromium-driver``); only the
standard library otherwise. Exits 1 with one line per problem on failure, 2 if Chromium is missing.

    python scripts/check_site.py                     # index + notebooks/01_flow_matching_2d
    python scripts/check_site.py --page notebooks/03_shortcut_models.html
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHAPTER = "notebooks/01_flow_matching_2d.html"
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
# Text that must never appear in a rendered page.
ERROR_PATTERNS = [
    (re.compile(r"Traceback \(most recent call last\)"), "a Python traceback"),
    (re.compile(r"\b[A-Z]\w*(Error|Exception):"), "an exception message"),
    (re.compile(r"\bCellExecutionError\b|\bDeadKernelError\b"), "a notebook execution error"),
]
# Classes myst-nb gives to error outputs of executed cells.
ERROR_CLASSES = ("output error", "output traceback")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"<svg", b"<?xml")


class _DomScan(html.parser.HTMLParser):
    """Collect images, script sources, MathJax output, error outputs and visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.mjx = 0
        self.math_nodes = 0
        self.error_outputs = 0
        self.title = ""
        self.text: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "mjx-container":
            self.mjx += 1
        elif tag == "title":
            self._in_title = True
        if tag in ("script", "style", "noscript", "mjx-assistive-mml"):
            self._skip += 1
        if "math" in cls.split() or "math notranslate" in cls:
            self.math_nodes += 1
        if any(err in cls for err in ERROR_CLASSES):
            self.error_outputs += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "noscript", "mjx-assistive-mml") and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if not self._skip:
            self.text.append(data)


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
    def log_message(self, format, *args):
        pass


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
    """GET ``url`` (local server only); return (status, first bytes of the body)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def check_page(binary: str, base: str, page: str, shots: Path, args) -> list[str]:
    """Load one page; return a list of problems (empty when it passes)."""
    url = base + page
    problems: list[str] = []
    try:
        proc = chromium(
            binary,
            [f"--virtual-time-budget={args.budget_ms}", "--dump-dom", url],
            timeout=args.timeout,
        )
    except subprocess.TimeoutExpired:
        return [f"{page}: Chromium did not finish within {args.timeout} s"]
    if proc.returncode != 0 or "<html" not in proc.stdout:
        tail = proc.stderr.strip().splitlines()[-3:]
        return [f"{page}: Chromium failed (exit {proc.returncode}): {' | '.join(tail)}"]

    scan = _DomScan()
    scan.feed(proc.stdout)
    text = " ".join(" ".join(scan.text).split())
    if "404" in scan.title or "not found" in scan.title.lower():
        problems.append(f"{page}: page not found (title {scan.title.strip()!r})")
    if len(text) < 200:
        problems.append(f"{page}: almost no text rendered ({len(text)} characters)")
    for pattern, what in ERROR_PATTERNS:
        match = pattern.search(text)
        if match:
            start = max(0, match.start() - 60)
            problems.append(f"{page}: shows {what}: ...{text[start : match.end() + 60]}...")
    if scan.error_outputs:
        problems.append(f"{page}: {scan.error_outputs} error output(s) of executed cells")

    remote_mathjax = [s for s in scan.scripts if "mathjax" in s.lower() and "://" in s]
    if remote_mathjax:
        problems.append(f"{page}: MathJax loaded from the network: {remote_mathjax[0]}")
    if page != "index.html" and scan.math_nodes and not scan.mjx:
        problems.append(f"{page}: has math but MathJax rendered none (no mjx-container)")

    local_images = []
    for src in scan.images:
        full = urllib.parse.urljoin(url, src)
        if full.startswith(base):
            local_images.append(full)
    for img in local_images:
        status, body = fetch(img)
        if status != 200 or not body:
            problems.append(f"{page}: image {img} not served (status {status}, {len(body)} bytes)")
        elif not body.lstrip()[:5].startswith(IMAGE_MAGIC) and b"<svg" not in body[:500]:
            problems.append(f"{page}: image {img} is not a PNG/JPEG/GIF/SVG file")
    if page.startswith("notebooks/") and len(local_images) < args.min_figures:
        problems.append(
            f"{page}: expected at least {args.min_figures} figure(s), found {len(local_images)}"
        )

    shot = shots / (re.sub(r"[^A-Za-z0-9_.-]+", "_", page).removesuffix(".html") + ".png")
    proc = chromium(
        binary,
        [
            f"--virtual-time-budget={args.budget_ms}",
            f"--window-size={args.window}",
            f"--screenshot={shot}",
            url,
        ],
        timeout=args.timeout,
    )
    if not shot.exists() or shot.stat().st_size == 0:
        problems.append(f"{page}: no screenshot written ({proc.stderr.strip()[-200:]})")
    print(
        f"{page}: {len(text)} chars of text, {len(local_images)} local image(s) "
        f"({len(scan.images) - len(local_images)} remote), {scan.mjx} MathJax element(s), "
        f"screenshot {shot.relative_to(args.build.parent) if shot.exists() else 'missing'}"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "_build", help="jupyter-book _build")
    parser.add_argument(
        "--page",
        action="append",
        help=f"page under _build/html to check (repeatable; default index.html and "
        f"{DEFAULT_CHAPTER})",
    )
    parser.add_argument("--min-figures", type=int, default=1, help="per chapter page")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time for JS")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per Chromium run")
    parser.add_argument("--window", default="1280,1600", help="screenshot size W,H")
    args = parser.parse_args(argv)

    html_dir = args.build / "html"
    if not (html_dir / "index.html").exists():
        print(f"check_site: {html_dir}/index.html not found; build the book first", file=sys.stderr)
        return 1
    binary = find_chromium()
    if binary is None:
        print(
            "check_site: Chromium not found; install it with "
            "`apt-get install -y chromium chromium-driver` (or set $CHROMIUM)",
            file=sys.stderr,
        )
        return 2
    pages = args.page or ["index.html", DEFAULT_CHAPTER]
    for page in pages:
        if not (html_dir / page).exists():
            print(f"check_site: {html_dir / page} does not exist", file=sys.stderr)
            return 1
    shots = args.build / "check_site"
    shots.mkdir(parents=True, exist_ok=True)

    server, base = serve(html_dir)
    try:
        problems = [p for page in pages for p in check_page(binary, base, page, shots, args)]
    finally:
        server.shutdown()
        server.server_close()
    if problems:
        for problem in problems:
            print(f"check_site: FAIL {problem}", file=sys.stderr)
        return 1
    print(f"check_site: OK ({len(pages)} page(s); screenshots in {shots})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
