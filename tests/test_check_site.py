"""The detectors of scripts/check_site.py on small HTML pages: they pass good pages, fail bad ones.

No browser here: the detectors are functions of a page's HTML (the DOM that Chromium dumps).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPO_URL = "https://github.com/owner/book"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cs = _load("check_site", ROOT / "scripts/check_site.py")


def page(body: str, title: str = "A chapter") -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


RENDERED = page(
    "<h1>1. Flow matching</h1>"
    "<p>The noise <span class='math notranslate nohighlight'><mjx-container class='MathJax'>"
    "<mjx-assistive-mml><math><mi>x</mi></math></mjx-assistive-mml></mjx-container></span> "
    "costs $5 and $10 is not math.</p>"
    "<table><tr><th>method</th><th>1 step</th></tr>"
    "<tr><td>shortcut</td><td class='sm-number'>284 ± 14.4</td></tr></table>"
    "<div class='highlight'><pre>print('|---|---|', '$x_0$', r'\\frac')\nfor row in rows:</pre>"
    "</div><p><code>|---|</code> in code is fine, and so is <code>$x_0$</code>.</p>"
)


@pytest.fixture
def site(tmp_path):
    """A built site and a repository: html/ with two pages and an image, repo/ with files."""
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "index.html").write_text(
        '<meta http-equiv="Refresh" content="0; url=book/intro.html" />'
    )
    (html / "book").mkdir()
    (html / "book" / "intro.html").write_text(page("intro"))
    (html / "notebooks" / "01_x.html").write_text(RENDERED)
    (html / "_images" / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n....")
    (html / "_static").mkdir()
    (html / "_static" / "not_a_page.html").write_text("x")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "notebooks" / "01_x.ipynb").write_text("{}")
    (repo / "README.md").write_text("# readme")
    return html, repo


def problems_of(html_text: str, site, name: str = "notebooks/01_x.html", min_figures: int = 0):
    html, repo = site
    scan = cs.scan_html(html_text)
    return cs.dom_problems(
        scan, name, html_dir=html, repo_root=repo, repo_url=REPO_URL, min_figures=min_figures
    )


def test_a_rendered_page_passes(site):
    assert problems_of(RENDERED + "x" * 200, site) == []


def test_prose_leaves_out_code_and_typeset_math():
    scan = cs.scan_html(RENDERED)
    assert "284 ± 14.4" in scan.prose and "costs $5 and $10" in scan.prose
    assert "|---|" not in scan.prose and "frac" not in scan.prose and "x_0" not in scan.prose
    assert "for row in rows:" in scan.text  # code is still text for the error check
    assert scan.mjx == 1 and scan.math_nodes == 1


def test_a_table_printed_as_text_fails():
    # what myst-nb's commonmark renderer makes of display(Markdown(table)): one paragraph
    raw = page("<p>| method | 1 step |\n|---|---:|\n| shortcut | 284 ± 14.4 |</p>")
    problems = cs.raw_markdown_tables(cs.scan_html(raw).prose)
    assert len(problems) == 1 and "raw Markdown table" in problems[0]
    assert cs.raw_markdown_tables("| :--- | ---: |") != []
    assert cs.raw_markdown_tables("a | b and --- alone") == []


@pytest.mark.parametrize(
    "text",
    [
        "the noise $x_0$ at time $t$",
        "a velocity $v = x_1 - x_0$ here",
        "display $$\\int_0^1 v\\,dt$$ math",
        "delimited \\(x_t\\) math",
        "a bare \\frac{1}{2} command",
    ],
)
def test_raw_tex_in_prose_fails(text):
    assert cs.raw_tex(cs.scan_html(page(f"<p>{text}</p>")).prose) != []


@pytest.mark.parametrize("text", ["it costs $5 and $10", "a 50% share", "US$ 3", "C:\\Users"])
def test_dollar_amounts_are_not_tex(text):
    assert cs.raw_tex(text) == []


def test_math_that_mathjax_did_not_typeset_fails(site):
    untypeset = page(
        "<p><span class='math notranslate nohighlight'>\\(x_0\\)</span></p>" + "x" * 200
    )
    problems = problems_of(untypeset, site)
    assert any("MathJax rendered none" in p for p in problems)
    assert cs.raw_tex(cs.scan_html(untypeset).prose) == []  # the math node itself is not prose


def test_error_text_fails(site):
    bad = page("<pre>Traceback (most recent call last):\n  ValueError: boom</pre>" + "x" * 200)
    problems = problems_of(bad, site)
    assert any("traceback" in p for p in problems) and any("exception" in p for p in problems)
    # source listings show `except ValueError:` legitimately
    assert problems_of(bad, site, name="_modules/shortcut_mini/x.html") == []


def _stderr_output(text: str) -> str:
    return (
        '<div class="cell_output docutils container"><div class="output stderr '
        f'highlight-myst-ansi notranslate"><div class="highlight"><pre>{text}</pre></div></div>'
        "</div>"
    )


@pytest.mark.parametrize(
    "text",
    [
        "findfont: Font family ['STIXGeneral'] not found. Falling back to DejaVu Sans.",
        "/x/y.py:3: UserWarning: something is deprecated\n  warnings.warn(",
    ],
)
def test_a_library_warning_in_a_cells_output_fails(site, text):
    problems = problems_of(page(_stderr_output(text) + "<p>" + "x " * 200 + "</p>"), site)
    assert any("library warning" in p for p in problems), problems


def test_a_progress_bar_on_stderr_and_warning_words_in_prose_pass(site):
    bar = _stderr_output("training: 100%|##########| 800/800 [00:04&lt;00:00, 190 step/s]")
    prose = "<p>A UserWarning: is what Python prints; " + "x " * 200 + "</p>"
    assert problems_of(page(bar + prose), site) == []


def test_images_that_do_not_load_fail():
    base = "http://127.0.0.1:1/"
    served = {
        base + "_images/fig.png": (200, b"\x89PNG...."),
        base + "_images/bad.png": (200, b"hi"),
    }

    def fetch(url):
        return served.get(url, (404, b""))

    url = base + "notebooks/01_x.html"
    assert (
        cs.image_problems(["../_images/fig.png", "data:image/png;base64,AAA"], url, base, fetch)
        == []
    )
    problems = cs.image_problems(
        [
            "https://colab.research.google.com/assets/colab-badge.svg",
            "../_images/missing.png",
            "../_images/bad.png",
        ],
        url,
        base,
        fetch,
    )
    assert len(problems) == 3
    assert "remote" in problems[0] and "404" in problems[1] and "not a PNG" in problems[2]


def test_links_to_files_that_do_not_exist_fail(site):
    html, repo = site
    good = [
        "#section",
        "../book/intro.html#top",
        "../_images/fig.png",
        "https://arxiv.org/abs/2410.12557",
        f"{REPO_URL}",
        f"{REPO_URL}/issues/new?title=x",
        f"{REPO_URL}/blob/main/README.md",
        "https://colab.research.google.com/github/owner/book/blob/abc123/notebooks/01_x.ipynb",
        "mailto:someone@example.org",
    ]
    assert cs.link_problems(good, "notebooks/01_x.html", html, repo, REPO_URL) == []
    bad = [
        "http://NOTES.md",  # linkify's link for a bare file name
        "../book/missing.html",
        f"{REPO_URL}/blob/main/docs/NOTES.md",
        "https://colab.research.google.com/github/owner/book/blob/main/notebooks/09_none.ipynb",
        "file:///home/me/x.html",
        "http://checkpoint.pt",  # a checkpoint's file name, linkified
    ]
    problems = cs.link_problems(bad, "notebooks/01_x.html", html, repo, REPO_URL)
    assert len(problems) == 6 and "file name made into a web address" in problems[5]
    assert "file name made into a web address" in problems[0]
    assert "not in the site" in problems[1]
    assert "docs/NOTES.md, which is not in the repository" in problems[2]
    assert "09_none.ipynb" in problems[3] and "local file" in problems[4]


def test_every_page_is_visited_and_redirects_resolve(site):
    html, _ = site
    assert cs.site_pages(html) == ["book/intro.html", "index.html", "notebooks/01_x.html"]
    text = (html / "index.html").read_text()
    assert cs.redirect_target("index.html", text) == "book/intro.html"
    assert cs.redirect_target("book/intro.html", page("no redirect")) is None


def test_chapter_pages_need_figures_and_text(site):
    problems = problems_of(page("<p>short</p>"), site, min_figures=1)
    assert any("almost no text" in p for p in problems)
    assert any("at least 1 figure" in p for p in problems)
    assert problems_of(page("<p>short</p>", title="Search"), site, name="search.html") == []


def test_a_page_with_every_fault_lists_them_all(site):
    bad = page(
        "<p>| a | b | |---|---| and $x_0$</p><a href='http://NOTES.md'>NOTES.md</a>"
        "<img src='https://example.org/badge.svg'>" + "x" * 200
    )
    problems = problems_of(bad, site)
    assert len(problems) == 3  # raw table, raw TeX, bad link (images are checked on load)
    assert cs.image_problems(cs.scan_html(bad).images, "http://h/p.html", "http://h/", None)


@pytest.mark.parametrize(
    "text",
    [
        "one paper-scale ImageNet run pushes (204, 800, 0) images through DiT-B",
        "((2, 560, 0) network evaluations to make (20, 0) pairs)",
    ],
)
def test_a_number_glued_as_a_tuple_fails(site, text):
    problems = problems_of(page(f"<p>{text}</p>" + "x" * 200), site)
    assert problems and all("tuple" in p for p in problems)


@pytest.mark.parametrize(
    "text, what",
    [
        ("3 steps are ['1/2', '1/4', '1/4'] here", "Python list"),
        ("the schedule [0.5, 0.25, 0.25] lands", "Python list"),
        ("the levels [7, 6, 5, 4] in order", "Python list"),
        ("with 4 step(s) of the sampler", "template plural"),
        ("misaligned steps: None, so the order", "None in a sentence"),
        ("the best method is None of course", "None in a sentence"),
    ],
)
def test_a_template_seam_in_prose_fails(site, text, what):
    problems = problems_of(page(f"<p>{text}</p>" + "x" * 200), site)
    assert len(problems) == 1 and what in problems[0], problems


def test_prose_that_reads_as_prose_passes(site):
    good = (
        "<p>One run pushes 204,800,000 images; 3 steps are 1/2, 1/4 and 1/4. None of the "
        "variants failed [FHLA25] [1]. Budgets 1, 2 and 4 (or 8), t in [0, 1], x in [-1, 1]. "
        "The pairs (x, y) and a "
        "tuple in code: <code>(2, 4, 8)</code>, <code>['1/2']</code>, <code>None</code>.</p>"
    )
    assert problems_of(page(good + "x" * 200), site) == []


def test_a_heading_number_outside_its_chapter_fails(site):
    chapter = page(
        "<h1>3. Shortcut models<a class='headerlink' href='#a'>#</a></h1>"
        "<h2>3.5 Budgets that are not a power of two<a class='headerlink' href='#b'>#</a></h2>"
        "<h3>5.1 The order of the steps</h3><h3>3.5.2 Fine</h3>"
        "<h2>6. Inside a trained model</h2><h2>Summary</h2>" + "x" * 200
    )
    problems = problems_of(chapter, site)
    assert len(problems) == 2, problems
    assert "5.1" in problems[0] and "chapter 3" in problems[0] and "6" in problems[1]
    assert cs.scan_html(chapter).headings[1] == (2, "3.5 Budgets that are not a power of two")
    # pages without a numbered title (the intro, the results page) are not checked
    other = page("<h1>Results</h1><h2>2. Speed</h2>" + "x" * 200)
    assert problems_of(other, site, name="book/results.html") == []


def test_a_table_wider_than_the_column_fails(site):
    measured = (
        '<html data-check-site=\'{"viewport": 1280, "column": 800, "tables": 2, '
        '"wide": [{"width": 1180, "text": "method 1 step 2 steps"}]}\'>'
        "<head><title>A chapter</title></head><body><p>" + "x" * 200 + "</p></body></html>"
    )
    problems = problems_of(measured, site)
    assert len(problems) == 1 and "1180 px wide" in problems[0] and "800 px" in problems[0]
    fits = measured.replace('[{"width": 1180, "text": "method 1 step 2 steps"}]', "[]")
    assert problems_of(fits, site) == []


@pytest.mark.skipif(cs.find_chromium() is None, reason="needs Chromium")
def test_the_browser_measures_table_widths(tmp_path):
    # the real measurement: a 700 px column, one table that fits and one that does not
    (tmp_path / "p.html").write_text(
        "<html><head><title>t</title></head><body><article class='bd-article' style='width:700px'>"
        "<table><tr><td>fits</td></tr></table>"
        "<table style='width:1100px'><tr><td>too wide</td></tr></table></article></body></html>"
    )
    server, base = cs.serve(tmp_path)
    try:
        proc = cs.chromium(
            cs.find_chromium(),
            ["--virtual-time-budget=8000", "--window-size=1280,800", "--dump-dom", base + "p.html"],
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    measure = cs.scan_html(proc.stdout).measure
    assert measure["column"] == 700 and measure["tables"] == 2, measure
    assert [t["width"] for t in measure["wide"]] == [1100], measure
    assert "too wide" in measure["wide"][0]["text"]


def test_a_display_equation_wider_than_the_column_fails(site):
    measured = (
        '<html data-check-site=\'{"viewport": 1280, "column": 700, "tables": 0, "wide": [], '
        '"equations": 2, "wide_math": [{"width": 910, "text": "E[x1|xt=x]=sum w x"}]}\'>'
        "<head><title>A chapter</title></head><body><p>" + "x" * 200 + "</p></body></html>"
    )
    problems = problems_of(measured, site)
    assert len(problems) == 1 and "display equation is 910 px wide" in problems[0], problems
    assert "700 px" in problems[0] and "E[x1|xt=x]" in problems[0]
    fits = measured.replace('[{"width": 910, "text": "E[x1|xt=x]=sum w x"}]', "[]")
    assert problems_of(fits, site) == []


@pytest.mark.skipif(cs.find_chromium() is None, reason="needs Chromium")
def test_the_browser_measures_display_equations(tmp_path):
    # as the book's CSS does, a display equation's box is at most the column wide and scrolls:
    # one that fits, one whose content is wider than the column (cut off to a reader)
    box = "display:block;max-width:100%;overflow-x:auto"
    (tmp_path / "p.html").write_text(
        "<html><head><title>t</title></head><body><article class='bd-article' style='width:700px'>"
        f"<div class='math'><mjx-container display='true' style='{box}'>"
        "<span style='display:inline-block;width:300px'>short</span></mjx-container></div>"
        f"<div class='math'><mjx-container display='true' style='{box}'>"
        "<span style='display:inline-block;width:1000px'>long</span>"
        "<mjx-assistive-mml>v = long</mjx-assistive-mml></mjx-container></div>"
        "</article></body></html>"
    )
    server, base = cs.serve(tmp_path)
    try:
        proc = cs.chromium(
            cs.find_chromium(),
            ["--virtual-time-budget=8000", "--window-size=1280,800", "--dump-dom", base + "p.html"],
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    measure = cs.scan_html(proc.stdout).measure
    assert measure["equations"] == 2, measure
    assert len(measure["wide_math"]) == 1 and measure["wide_math"][0]["width"] >= 1000, measure
    assert measure["wide_math"][0]["text"] == "v = long", measure


@pytest.mark.parametrize(
    "text",
    [
        "/tmp/tmpa1b2c3d4/book/results: 9 JSON file(s)",
        "/home/someone/shortcut-mini/notebooks/01.ipynb",
        "results in /srv/build/clone/book/results",
        "a folder /tmp/reproduce-smoke-k3j4h5g6 with two records",
        "/root/.cache/shortcut_mini/classifier.pt",
        "/work/clone/.venv/lib/python3.11/site-packages/torch",
    ],
)
def test_an_absolute_build_path_fails(site, text):
    problems = problems_of(page(f"<pre>{text}</pre><p>" + "x" * 200 + "</p>"), site)
    assert len(problems) == 1 and "path of the build machine" in problems[0], problems


def test_the_repository_folder_of_the_build_fails(site):
    _, repo = site
    problems = problems_of(page(f"<p>read from {repo}/x.json</p>" + "x" * 200), site)
    assert len(problems) == 1 and str(repo) in problems[0]


@pytest.mark.parametrize(
    "text",
    [
        "shortcut-mini reproduce fashion_mnist --out /tmp/batch/fashion_mnist",
        "https://github.com/owner/book/blob/main/book/results/summary.md",
        "runs/demo and book/results/fashion_mnist/*.json",
        "the ratio 1/2 and/or 3/4",
    ],
)
def test_paths_that_are_not_build_paths_pass(site, text):
    assert problems_of(page(f"<p>{text}</p>" + "x" * 200), site) == []


def test_python_values_in_the_api_reference_are_not_seams(site):
    api = page(
        "<dl class='py function'><dt class='sig'>run_preset(<em>log</em>=<em>None</em>)</dt>"
        "<dd><p>methods (list[str] | None) – the methods; levels [7, 6, 5] in order.</p></dd></dl>"
        "<p>" + "x" * 200 + "</p>"
    )
    assert problems_of(api, site, name="book/api.html") == []
    # raw TeX is still an error there
    assert problems_of(api.replace("the methods", "$x_0$"), site, name="book/api.html") != []


@pytest.mark.skipif(cs.find_chromium() is None, reason="needs Chromium")
def test_the_narrow_screenshot_is_a_400_px_viewport(tmp_path):
    # Chromium will not open a window narrower than 500 px; the framed page must still lay out
    # at 400 px: a media query paints the page red only below 450 px.
    from PIL import Image

    (tmp_path / "p.html").write_text(
        "<html><head><title>t</title><style>body { background: blue; } "
        "@media (max-width: 450px) { body { background: red; } }</style></head>"
        "<body><p>x</p></body></html>"
    )
    server, base = cs.serve(tmp_path)
    shots = {}
    try:
        for name, url in (
            ("wide", base + "p.html"),
            ("narrow", cs.narrow_url(base, "p.html", 400)),
        ):
            shot = tmp_path / f"{name}.png"
            cs.chromium(
                cs.find_chromium(),
                [
                    "--virtual-time-budget=4000",
                    "--window-size=500,300",
                    f"--screenshot={shot}",
                    url,
                ],
                timeout=120,
            )
            shots[name] = Image.open(shot).convert("RGB")
    finally:
        server.shutdown()
        server.server_close()
    assert shots["wide"].getpixel((200, 150)) == (0, 0, 255)  # a 500 px window: blue
    assert shots["narrow"].getpixel((200, 150)) == (255, 0, 0)  # the 400 px frame: red
    assert shots["narrow"].getpixel((450, 150)) != (255, 0, 0)  # beyond the frame


def test_a_markdown_image_shown_as_text_fails(site):
    # what MyST makes of ![badge](data:image/svg+xml;...): it refuses the address, shows the text
    raw = page("<p>![Open In Colab](data:image/svg+xml;base64,PHN2Zz4=)</p>" + "x" * 200)
    problems = problems_of(raw, site)
    assert len(problems) == 1 and "raw Markdown image" in problems[0]
    assert problems_of(page("<p>an image: <code>![a](b.png)</code></p>" + "x" * 200), site) == []
