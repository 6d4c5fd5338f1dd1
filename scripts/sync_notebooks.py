"""Keep the first two cells of every chapter notebook in sync with ``_config.yml``.

Every chapter ``notebooks/[0-9]*.ipynb`` starts with two generated cells:

1. a markdown cell with an "Open in Colab" badge that opens the chapter from the repository's
   branch (``repository: url:`` and ``branch:`` in ``_config.yml``, the one place the URL lives);
   the badge image is the book's own ``book/_static/colab-badge.svg``, inlined as a ``data:`` URI
   so that it shows wherever the notebook is opened: on the built site offline, in Jupyter, and
   in Colab (where a relative path to the repository's file does not resolve). The cell is HTML
   (``<a><img></a>``): Markdown's image syntax refuses ``data:image/svg+xml`` addresses;
2. a code cell that, only inside Google Colab, pip installs the package from the repository at a
   git ref: the branch by default, or the commit given with ``--commit`` (the book build stamps
   the commit it builds, so the rendered pages and their downloads install exactly that code).
   It is a few lines (Colab shows it in full), prints a line when it starts and when the install
   finished, and when pip fails it stops with a sentence that says so and what to do, instead of
   a bare ``CalledProcessError``.

Usage (from the repository root)::

    python scripts/sync_notebooks.py                 # rewrite the two cells (ref = branch)
    python scripts/sync_notebooks.py --strip         # ... and remove outputs / execution counts
    python scripts/sync_notebooks.py --commit SHA    # stamp a commit into the install cell
    python scripts/sync_notebooks.py --check         # exit 1 if anything is out of sync (CI)

``--check`` changes nothing. It fails when the two cells differ from what this script would
write, when a notebook holds outputs, execution counts or papermill leftovers, or when a chapter
lacks the skeleton of ``notebooks/_template.ipynb`` (a ``parameters``-tagged cell followed by a
code cell that calls ``check_parameters``, and a last code cell that calls ``run_record``). Only the standard library and PyYAML are needed.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_GLOB = "[0-9]*.ipynb"
BADGE_ID = "colab-badge"
INSTALL_ID = "colab-install"
# The badge image, relative to the repository root (copied into the site by Sphinx).
BADGE_IMAGE = "book/_static/colab-badge.svg"
DEFAULT_COLAB_URL = "https://colab.research.google.com"
# The distribution name and the extra installed in Colab (Colab already has torch, numpy,
# matplotlib; the heavy `book` extra with jupyter-book is not needed there).
DIST_NAME = "shortcut-mini"
COLAB_EXTRA = ""
INSTALL_TAGS = ["hide-input"]


class SyncError(Exception):
    """A configuration problem that stops the script (bad ``_config.yml``, unreadable file)."""


def read_config(root: Path = ROOT) -> dict:
    """Return the repository URL, branch, path to the book and Colab URL from ``_config.yml``."""
    path = root / "_config.yml"
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SyncError(f"cannot read {path}: {exc}") from exc
    repo = cfg.get("repository") or {}
    url = str(repo.get("url") or "").strip().rstrip("/")
    url = url.removesuffix(".git")
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url)
    if not match:
        raise SyncError(
            f"{path}: repository.url must look like https://github.com/OWNER/REPO, got {url!r}"
        )
    branch = str(repo.get("branch") or "main").strip()
    path_to_book = str(repo.get("path_to_book") or "").strip().strip("/")
    colab = str((cfg.get("launch_buttons") or {}).get("colab_url") or DEFAULT_COLAB_URL)
    return {
        "url": url,
        "owner": match.group(1),
        "repo": match.group(2),
        "branch": branch,
        "path_to_book": path_to_book,
        "colab_url": colab.rstrip("/"),
    }


def _lines(text: str) -> list[str]:
    """Split text into the list-of-lines form that notebooks store."""
    return text.splitlines(keepends=True)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def colab_link(cfg: dict, nb_relpath: str) -> str:
    """The Colab URL that opens ``nb_relpath`` (relative to the book root) from the branch."""
    prefix = f"{cfg['path_to_book']}/" if cfg["path_to_book"] else ""
    return (
        f"{cfg['colab_url']}/github/{cfg['owner']}/{cfg['repo']}/blob/"
        f"{cfg['branch']}/{prefix}{nb_relpath}"
    )


def pip_spec(cfg: dict, ref: str) -> str:
    """The pip requirement that installs the package from the repository at git ``ref``."""
    extra = f"[{COLAB_EXTRA}]" if COLAB_EXTRA else ""
    return f"{DIST_NAME}{extra} @ git+{cfg['url']}@{ref}"


def badge_image(root: Path = ROOT) -> str:
    """The badge image as a ``data:`` URI of ``book/_static/colab-badge.svg`` (base64)."""
    path = root / BADGE_IMAGE
    try:
        svg = path.read_bytes()
    except OSError as exc:
        raise SyncError(f"cannot read the Colab badge {path}: {exc}") from exc
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


INSTALL_TEMPLATE = """\
# In Google Colab only: install the book's package. Elsewhere this cell does nothing.
import subprocess
import sys

REPOSITORY, REF = "@URL@", "@REF@"
if "google.colab" in sys.modules:
    print(f"installing @DIST@ at {REF} ...", flush=True)
    spec = f"@DIST@ @ git+{REPOSITORY}@{REF}"
    command = [sys.executable, "-m", "pip", "install", "-q", spec]
    pip = subprocess.run(command, capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(
            f"pip could not install {spec} (connect the runtime to the internet "
            f"and run this cell again); pip said:\\n{pip.stderr[-2000:]}"
        )
    print("installed: run the next cells")"""


def install_source(cfg: dict, ref: str) -> str:
    """The Colab-only install cell: say that it installs, pip install, say it finished or why not."""
    dist = f"{DIST_NAME}[{COLAB_EXTRA}]" if COLAB_EXTRA else DIST_NAME
    return (
        INSTALL_TEMPLATE.replace("@URL@", cfg["url"]).replace("@REF@", ref).replace("@DIST@", dist)
    )


def header_cells(cfg: dict, nb_relpath: str, ref: str, root: Path = ROOT) -> list[dict]:
    """The two generated cells (badge, Colab install) for the notebook at ``nb_relpath``."""
    badge = {
        "cell_type": "markdown",
        "id": BADGE_ID,
        "metadata": {},
        "source": _lines(
            f'<a href="{colab_link(cfg, nb_relpath)}"><img src="{badge_image(root)}" '
            f'alt="Open In Colab" width="117" height="20"></a>\n'
            "\n"
            "<!-- Generated by scripts/sync_notebooks.py from _config.yml; do not edit by hand. -->"
        ),
    }
    install = {
        "cell_type": "code",
        "execution_count": None,
        "id": INSTALL_ID,
        "metadata": {"tags": list(INSTALL_TAGS)},
        "outputs": [],
        "source": _lines(install_source(cfg, ref)),
    }
    return [badge, install]


def strip_outputs(nb: dict) -> dict:
    """Return a copy of ``nb`` without outputs, execution counts or execution metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb.get("cells", []):
        meta = cell.setdefault("metadata", {})
        for key in ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime"):
            meta.pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.get("metadata", {}).pop("papermill", None)
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def _has_tag(cell: dict, tag: str) -> bool:
    return tag in (cell.get("metadata", {}).get("tags") or [])


def _comparable(cell: dict) -> tuple:
    return (
        cell.get("cell_type"),
        _source(cell),
        tuple(cell.get("metadata", {}).get("tags") or []),
    )


def check_notebook(nb: dict, expected_header: list[dict]) -> list[str]:
    """All the ways ``nb`` is out of sync with ``expected_header`` or the chapter skeleton."""
    problems: list[str] = []
    cells = nb.get("cells", [])
    if len(cells) < 2:
        problems.append("has fewer than two cells (badge and Colab install are missing)")
    else:
        for name, have, want in zip(("badge", "install"), cells[:2], expected_header):
            if _comparable(have) != _comparable(want):
                problems.append(f"cell {1 if name == 'badge' else 2} ({name}) is out of sync")
    n_out = sum(1 for c in cells if c.get("cell_type") == "code" and c.get("outputs"))
    n_count = sum(
        1 for c in cells if c.get("cell_type") == "code" and c.get("execution_count") is not None
    )
    if n_out:
        problems.append(f"{n_out} code cell(s) hold outputs (commit notebooks without outputs)")
    if n_count:
        problems.append(f"{n_count} code cell(s) hold execution counts")
    if "papermill" in nb.get("metadata", {}) or any(
        _has_tag(c, "injected-parameters") for c in cells
    ):
        problems.append("holds papermill leftovers (injected-parameters cell or metadata)")
    code = [c for c in cells if c.get("cell_type") == "code"]
    tagged = [i for i, c in enumerate(code) if _has_tag(c, "parameters")]
    if not tagged:
        problems.append("has no code cell tagged 'parameters'")
    elif tagged[0] + 1 >= len(code) or "check_parameters(" not in _source(code[tagged[0] + 1]):
        problems.append(
            "the code cell after its 'parameters' cell does not call check_parameters(...) "
            "(values papermill injects there must be checked)"
        )
    if not code or "run_record(" not in _source(code[-1]):
        problems.append("its last code cell does not call run_record(...)")
    return problems


def sync_notebook(nb: dict, expected_header: list[dict], strip: bool) -> dict:
    """Return ``nb`` with its two header cells replaced (inserted if absent), optionally stripped.

    A notebook whose first cells are not the generated ones (matched by cell id, or a Colab
    badge / ``google.colab`` install in the source) gets the header inserted before them.
    """
    nb = copy.deepcopy(nb)
    cells = nb.setdefault("cells", [])
    badge = 1 if cells and _is_badge(cells[0]) else 0
    install = 1 if len(cells) > badge and _is_install(cells[badge]) else 0
    del cells[: badge + install]
    nb["cells"] = copy.deepcopy(expected_header) + cells
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, int(nb.get("nbformat_minor", 5)))
    return strip_outputs(nb) if strip else nb


def _is_badge(cell: dict) -> bool:
    return cell.get("id") == BADGE_ID or (
        cell.get("cell_type") == "markdown"
        and ("colab-badge" in _source(cell) or "Open In Colab" in _source(cell))
    )


def _is_install(cell: dict) -> bool:
    return cell.get("id") == INSTALL_ID or (
        cell.get("cell_type") == "code" and "google.colab" in _source(cell)
    )


def dumps(nb: dict) -> str:
    """Serialize like Jupyter / nbformat do (indent 1, sorted keys, UTF-8, final newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def chapter_paths(root: Path = ROOT) -> list[Path]:
    """The chapter notebooks, ``notebooks/[0-9]*.ipynb``, in reading order."""
    return sorted((root / "notebooks").glob(CHAPTER_GLOB))


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on drift")
    parser.add_argument("--strip", action="store_true", help="also remove outputs")
    parser.add_argument("--commit", help="git ref for the install cell (default: the branch)")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all chapters)")
    args = parser.parse_args(argv)

    try:
        cfg = read_config(root)
        badge_image(root)  # the badge file must be readable before any notebook is written
    except SyncError as exc:
        print(f"sync_notebooks: {exc}", file=sys.stderr)
        return 2
    ref = args.commit or cfg["branch"]
    paths = [p if p.is_absolute() else root / p for p in args.paths] or chapter_paths(root)
    if not paths:
        print("sync_notebooks: no chapter notebooks found under notebooks/", file=sys.stderr)
        return 0

    failures = 0
    for path in paths:
        rel = path.resolve().relative_to(root.resolve())
        book_rel = rel.as_posix()
        if cfg["path_to_book"]:
            book_rel = rel.relative_to(cfg["path_to_book"]).as_posix()
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"{rel}: cannot read notebook: {exc}", file=sys.stderr)
            failures += 1
            continue
        header = header_cells(cfg, book_rel, ref, root)
        if args.check:
            problems = check_notebook(nb, header)
            for problem in problems:
                print(f"{rel}: {problem}", file=sys.stderr)
            failures += bool(problems)
            continue
        text = dumps(sync_notebook(nb, header, strip=args.strip))
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            print(f"{rel}: updated")
    if args.check:
        if failures:
            print(
                f"sync_notebooks: {failures} notebook(s) out of sync; run "
                "`python scripts/sync_notebooks.py --strip` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"sync_notebooks: {len(paths)} notebook(s) in sync (ref {ref})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
