"""Sphinx extension: replace ``@REPO_URL@`` and ``@REPO_BRANCH@`` in the book's pages.

The repository URL is one value in ``_config.yml`` (``repository: url:``); jupyter-book hands it
to the theme as ``html_theme_options["repository_url"]``. Prose pages write the tokens instead of
the URL (they also work inside code blocks, where MyST substitutions do not), so the set-up page's
``pip install`` and ``git clone`` lines follow the configuration.
"""

from __future__ import annotations


def _replace(app, docname, source):
    opts = app.config.html_theme_options or {}
    url = str(opts.get("repository_url", "")).rstrip("/")
    branch = str(opts.get("repository_branch", "main"))
    source[0] = source[0].replace("@REPO_URL@", url).replace("@REPO_BRANCH@", branch)


def setup(app):
    app.connect("source-read", _replace)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
