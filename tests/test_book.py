"""Tests of the book's tooling: scripts/sync_notebooks.py and shortcut_mini.notebook (fast, CPU)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shortcut_mini import notebook as nbh

ROOT = Path(__file__).resolve().parent.parent
SHA = "0123456789abcdef0123456789abcdef01234567"


def _load_sync():
    spec = importlib.util.spec_from_file_location(
        "sync_notebooks", ROOT / "scripts/sync_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sync_notebooks"] = module
    spec.loader.exec_module(module)
    return module


sync = _load_sync()


@pytest.fixture
def book(tmp_path):
    """A tiny book: the real _config.yml and template copied as one chapter, in sync."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book" / "_static").mkdir(parents=True)
    shutil.copy(ROOT / sync.BADGE_IMAGE, tmp_path / sync.BADGE_IMAGE)
    (tmp_path / "notebooks").mkdir()
    chapter = tmp_path / "notebooks" / "01_demo.ipynb"
    shutil.copy(ROOT / "notebooks" / "_template.ipynb", chapter)
    assert sync.main(["--strip"], root=tmp_path) == 0
    return tmp_path, chapter


def _read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path, nb):
    path.write_text(sync.dumps(nb), encoding="utf-8")


def test_repository_chapters_are_in_sync():
    assert sync.main(["--check"], root=ROOT) == 0


def test_template_has_the_chapter_skeleton():
    cfg = sync.read_config(ROOT)
    nb = _read(ROOT / "notebooks" / "_template.ipynb")
    assert (
        sync.check_notebook(nb, sync.header_cells(cfg, "notebooks/_template.ipynb", "main")) == []
    )
    assert nb["cells"][2]["cell_type"] == "markdown" and "Learning goal" in "".join(
        nb["cells"][2]["source"]
    )


def test_header_uses_the_one_repository_url(book):
    root, chapter = book
    cfg = sync.read_config(root)
    badge, install = _read(chapter)["cells"][:2]
    badge_src, install_src = "".join(badge["source"]), "".join(install["source"])
    assert f"github/{cfg['owner']}/{cfg['repo']}/blob/{cfg['branch']}/notebooks/01_demo.ipynb" in (
        badge_src
    )
    assert f'REPOSITORY, REF = "{cfg["url"]}", "{cfg["branch"]}"' in install_src
    assert 'if "google.colab" in sys.modules:' in install_src
    # the badge image is inlined, so it shows in Colab (no relative path) and offline (no URL)
    match = re.match(
        r'<a href="https://colab[^"]+"><img src="(data:image/svg\+xml;base64,[A-Za-z0-9+/=]+)" '
        r'alt="Open In Colab"',
        badge_src,
    )
    assert match, badge_src[:120]
    svg = base64.b64decode(match.group(1).split(",", 1)[1])
    assert svg == (ROOT / "book/_static/colab-badge.svg").read_bytes()
    assert svg.lstrip().startswith(b"<svg")


def test_install_cell_is_short(book):
    _, chapter = book
    install = "".join(_read(chapter)["cells"][1]["source"])
    # 16: ruff's format of the 12 lines it had (one import a line, the long call wrapped)
    assert len(install.splitlines()) <= 16, install


def _run_install_cell(monkeypatch, results, capsys=None):
    """Execute the generated install cell as in Colab, with ``subprocess.run`` answering ``results``."""
    import subprocess

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        outcome = results[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return subprocess.CompletedProcess(cmd, outcome, stdout="", stderr="pip: no route")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setitem(sys.modules, "google.colab", object())
    source = sync.install_source(sync.read_config(ROOT), SHA)
    exec(compile(source, "colab-install", "exec"), {})
    return calls


def test_install_cell_pins_the_ref_and_says_when_it_starts_and_finishes(monkeypatch, capsys):
    calls = _run_install_cell(monkeypatch, [0])
    assert len(calls) == 1 and calls[0][1:4] == ["-m", "pip", "install"]
    assert calls[0][-1].endswith(f"@{SHA}")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("installing shortcut-mini") and SHA in out[0]
    assert out[-1] == "installed: run the next cells"


def test_install_cell_reports_pip_failures_with_what_to_do(monkeypatch, capsys):
    with pytest.raises(RuntimeError, match=f"(?s)could not install .*@{SHA}.*internet.*no route"):
        _run_install_cell(monkeypatch, [1])
    assert "installed" not in capsys.readouterr().out.replace("installing", "")


def test_install_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(sync.install_source(sync.read_config(ROOT), "main"), "colab-install", "exec"), {})


def test_check_passes_when_in_sync(book):
    root, _ = book
    assert sync.main(["--check"], root=root) == 0


def test_check_detects_edited_header(book, capsys):
    root, chapter = book
    nb = _read(chapter)
    nb["cells"][1]["source"] = ["print('hand edit')\n"]
    _write(chapter, nb)
    assert sync.main(["--check"], root=root) == 1
    assert "cell 2 (install) is out of sync" in capsys.readouterr().err
    assert sync.main([], root=root) == 0  # repair
    assert sync.main(["--check"], root=root) == 0


def test_check_detects_url_change_in_config(book):
    root, _ = book
    cfg = root / "_config.yml"
    cfg.write_text(cfg.read_text().replace("shortcut-mini/shortcut-mini", "someone/fork"))
    assert sync.main(["--check"], root=root) == 1
    assert sync.main([], root=root) == 0
    assert "someone/fork" in (root / "notebooks/01_demo.ipynb").read_text()


def test_check_fails_on_outputs_and_strip_removes_them(book, capsys):
    root, chapter = book
    nb = _read(chapter)
    code = next(c for c in nb["cells"] if c["cell_type"] == "code" and c["id"] != "colab-install")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    code["execution_count"] = 3
    _write(chapter, nb)
    assert sync.main(["--check"], root=root) == 1
    err = capsys.readouterr().err
    assert "hold outputs" in err and "execution counts" in err
    assert sync.main(["--strip"], root=root) == 0
    assert sync.main(["--check"], root=root) == 0
    assert all(not c.get("outputs") for c in _read(chapter)["cells"] if c["cell_type"] == "code")


def test_check_requires_parameters_and_run_record(book, capsys):
    root, chapter = book
    nb = _read(chapter)
    nb["cells"] = [c for c in nb["cells"] if "parameters" not in c["metadata"].get("tags", [])]
    nb["cells"] = [c for c in nb["cells"] if "run_record(" not in "".join(c["source"])]
    _write(chapter, nb)
    assert sync.main(["--check"], root=root) == 1
    err = capsys.readouterr().err
    assert "tagged 'parameters'" in err and "run_record" in err


def test_check_requires_the_parameters_to_be_checked_after_the_parameters_cell(book, capsys):
    """papermill injects its values after the ``parameters`` cell: the next code cell checks
    them (``check_parameters``), or ``-p seed abc`` fails deep inside PyTorch."""
    root, chapter = book
    nb = _read(chapter)
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and text.startswith("check_parameters("):
            cell["source"] = text.split("\n", 1)[1]
    _write(chapter, nb)
    assert sync.main(["--check"], root=root) == 1
    assert "does not call check_parameters(...)" in capsys.readouterr().err


def test_commit_stamp(book):
    root, chapter = book
    assert sync.main(["--commit", SHA], root=root) == 0
    text = chapter.read_text()
    assert f'\\"{SHA}\\"' in text  # REF = "SHA" in the install cell
    assert sync.main(["--check"], root=root) == 1  # committed form uses the branch
    assert sync.main(["--check", "--commit", SHA], root=root) == 0
    assert sync.main([], root=root) == 0  # back to the branch
    assert SHA not in chapter.read_text()


def test_sync_inserts_header_into_a_bare_notebook(book):
    root, chapter = book
    nb = _read(chapter)
    nb["cells"] = nb["cells"][2:]
    _write(chapter, nb)
    assert sync.main([], root=root) == 0
    cells = _read(chapter)["cells"]
    assert [c["id"] for c in cells[:2]] == ["colab-badge", "colab-install"]
    assert len(cells) == len(nb["cells"]) + 2


def test_bad_repository_url_is_a_clear_error(book, capsys):
    root, _ = book
    cfg = root / "_config.yml"
    cfg.write_text(cfg.read_text().replace("https://github.com/", "ftp://example.invalid/"))
    assert sync.main(["--check"], root=root) == 2
    assert "repository.url" in capsys.readouterr().err


# ----------------------------------------------------------------------- shortcut_mini.notebook


def _cuda(monkeypatch, present: bool, capability=(9, 0), memory_gb=141.0):
    """Fake a CUDA device 0 (an H200 by default) or its absence."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    props = type("Props", (), {"total_memory": int(memory_gb * 1e9)})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)


@pytest.mark.parametrize("value", ["ci", "cpu", "small_gpu", "gpu", " GPU "])
@pytest.mark.parametrize("cuda", [False, True])
def test_get_profile_env_wins_over_the_device(monkeypatch, value, cuda):
    _cuda(monkeypatch, cuda)
    monkeypatch.setenv("SHORTCUT_MINI_PROFILE", value)
    assert nbh.get_profile() == value.strip().lower()
    assert nbh.get_profile(default="ci") == value.strip().lower()


@pytest.mark.parametrize(
    ("cuda", "capability", "memory_gb", "expected", "reason"),
    [
        (True, (9, 0), 141.0, "gpu", "a large CUDA GPU: compute capability 9.0, 141.0 GB"),
        (True, (8, 0), 40.0, "gpu", "a large CUDA GPU"),  # A100 40 GB
        (True, (7, 5), 15.8, "small_gpu", "Colab-class CUDA GPU: compute capability 7.5"),  # T4
        (True, (8, 9), 24.0, "small_gpu", "needs 8.0 and 32 GB"),  # L4: too little memory
        (True, (7, 0), 32.0, "small_gpu", "Colab-class"),  # V100 32 GB: no bf16
        (False, None, 0.0, "cpu", "no CUDA device"),
    ],
)
def test_get_profile_picks_by_the_device(
    monkeypatch, capsys, cuda, capability, memory_gb, expected, reason
):
    _cuda(monkeypatch, cuda, capability, memory_gb)
    monkeypatch.delenv("SHORTCUT_MINI_PROFILE", raising=False)
    assert nbh.get_profile() == expected
    out = capsys.readouterr().out
    assert out.startswith(f"profile: {expected} (")
    assert reason in out
    monkeypatch.setenv("SHORTCUT_MINI_PROFILE", "  ")  # empty counts as unset
    assert nbh.get_profile(announce=False) == expected
    assert capsys.readouterr().out == ""


def test_get_profile_default_wins_over_the_device(monkeypatch):
    _cuda(monkeypatch, True)
    monkeypatch.delenv("SHORTCUT_MINI_PROFILE", raising=False)
    assert nbh.get_profile(default="ci") == "ci"
    assert nbh.choose_profile(default="CPU") == ("cpu", "the default this notebook asks for")


def test_get_profile_rejects_unknown(monkeypatch):
    monkeypatch.setenv("SHORTCUT_MINI_PROFILE", "tpu")
    with pytest.raises(ValueError, match=r"unknown profile 'tpu'.*ci, cpu, small_gpu, gpu"):
        nbh.get_profile()
    monkeypatch.delenv("SHORTCUT_MINI_PROFILE")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        nbh.get_profile(default="fast")


def test_run_record(monkeypatch, capsys):
    import torch

    monkeypatch.setenv("SHORTCUT_MINI_COMMIT", SHA)
    record = nbh.run_record(time.time() - 2.0, "ci")
    assert record["profile"] == "ci"
    assert record["commit"] == SHA
    assert record["torch"] == torch.__version__
    assert record["device"] == (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    )
    assert 2.0 <= record["wall_time_s"] < 60
    out = capsys.readouterr().out
    assert out.startswith("run record") and SHA in out and "wall_time_s" in out


def test_git_commit_fallbacks(monkeypatch, tmp_path):
    monkeypatch.delenv("SHORTCUT_MINI_COMMIT", raising=False)
    assert nbh.git_commit(cwd=tmp_path) == "unknown"  # not a git checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git binary at all
    assert nbh.git_commit() == "unknown"


def test_in_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert nbh.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert nbh.in_colab() is True


# ----------------------------------------------------------------------- repository-wide rules


def test_declared_torch_ranges_have_no_upper_bound():
    # Colab ships a recent torch; an upper bound below it would make pip downgrade it.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in ("torch", "torchvision"):
        specs = re.findall(rf'"{name}\s*([^"]*)"', text)
        assert specs, f"{name} is not declared in pyproject.toml"
        assert all("<" not in spec and "~=" not in spec and "==" not in spec for spec in specs)


def test_no_tracked_file_mentions_the_developers_design_file():
    # The book carries its own design notes (book/design.md); readers do not have the
    # developers' file, so nothing in the repository may point to it.
    name = "DESIGN" + ".md"
    proc = subprocess.run(
        ["git", "grep", "-l", "-I", "-F", name], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode not in (0, 1):
        pytest.skip(f"not a git checkout: {proc.stderr.strip()}")
    assert proc.stdout.split() == [], f"files that mention {name}: {proc.stdout.split()}"


def test_the_book_renders_displayed_markdown_and_has_its_design_notes():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = cfg["sphinx"]
    # display(Markdown(table)) must render as a table with math, not as raw text
    assert sphinx["config"]["nb_render_markdown_format"] == "myst"
    assert {"section_numbers", "number_cells"} <= set(sphinx["local_extensions"])
    assert "shortcut-mini.css" in sphinx["config"]["html_css_files"]
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert "file: book/design" in toc
    design = (ROOT / "book/design.md").read_text(encoding="utf-8")
    for label in ("design-decisions", "design-ema", "design-evaluation", "design-scale"):
        assert f"({label})=" in design


def test_the_api_quick_start_imports_every_name_it_uses():
    # the package docstring is the API page's quick-start: a reader pastes it as it is
    import ast
    import builtins

    import shortcut_mini

    code = shortcut_mini.__doc__.split("::", 1)[1].split("\n\n")[1]
    tree = ast.parse("\n".join(line[4:] for line in code.splitlines()))
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            bound |= {a.asname or a.name for a in node.names}
            assert all(hasattr(shortcut_mini, a.name) for a in node.names), node.names
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert used <= bound, f"used but never imported or assigned: {sorted(used - bound)}"
