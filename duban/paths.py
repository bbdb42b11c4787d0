"""Where the bundled rule sets and templates are, in a checkout and in an installed package.

In the repository `duban/rules` is a symlink to the top-level `rules/`; the wheel carries the same
files as package data, so an installation from a wheel has every bundled rule set and template.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLED_RULES", "BUNDLED_TEMPLATES", "default_rules_dir"]

BUNDLED_RULES = Path(__file__).resolve().parent / "rules"
BUNDLED_TEMPLATES = BUNDLED_RULES / "templates"


def default_rules_dir() -> Path:
    """`rules/` in the working directory when there is one (a checkout, an office's own copy), else the bundled."""
    local = Path("rules")
    return local if local.is_dir() else BUNDLED_RULES
