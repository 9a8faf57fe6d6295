"""Sphinx configuration for the aiopushy documentation."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import aiopushy

project = "aiopushy"
author = "aiopushy developers"
copyright = "aiopushy developers"
release = aiopushy.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build"]
nitpicky = False

# autodoc
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "signature"

# napoleon: Google-style docstrings only
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_theme_options = {
    "description": (
        "Asyncio-native remote Python interpreters, with nothing installed on the far side."
    ),
}
