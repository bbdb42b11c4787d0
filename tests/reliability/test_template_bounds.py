"""Templates in bounds (issue 15, item 5): a render time limit and an output size limit per template.

On main, nested `range(100000)` loops in an item template hung the round for ever, and
`{{ 'x' * 50000000 }}` raised MemoryError and rolled the whole round back, so none of its notices went
out. Now a template beyond a bound is stopped, the built-in template stands in for it for the rest of
the round, every notice is still rendered, and the problem is reported (to the admin, by the round).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from duban.notifiers.render import MAX_DIGEST_CHARS, MAX_ITEM_CHARS, DigestRenderer
from duban.notifiers.samples import sample_digest

from .support import RULES

HOSTILE = [
    ("nested range(100000) loops", "items/warning.txt.j2",
     "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "秒"),
    ("nested loops that print", "items/warning.html.j2",
     "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "秒"),
    ("'x' * 50000000", "items/warning.txt.j2", "{{ 'x' * 50000000 }}", "上限"),
    ("50000000 * 'x'", "digest.txt.j2", "{{ 50000000 * 'x' }}", "上限"),
    ("a list multiplied", "digest.html.j2", "{{ [1] * 100000000 }}", "上限"),
    ("10 ** 100000000", "subject.txt.j2", "{{ 10 ** 100000000 }}", "上限"),
    ("an item of 200,000 characters", "items/warning.txt.j2",
     "{% for i in range(100000) %}ab{% endfor %}", "上限"),
    ("a digest over the size limit", "digest.md.j2",
     "{% for i in range(100000) %}{{ 'y' * 150 }}{% endfor %}",
     "上限|秒"),  # whichever bound a loaded machine reaches first
]


@pytest.mark.parametrize(("what", "name", "source", "word"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_templates_a_template_beyond_its_bounds_falls_back_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger, what: str, name: str, source: str, word: str
) -> None:
    monkeypatch.setenv("DUBAN_TEMPLATE_SECONDS", "0.5")
    templates = tmp_path / "templates"
    shutil.copytree(RULES / "templates", templates)
    (templates / name).write_text(source, encoding="utf-8")
    renderer = DigestRenderer(templates)
    digest = sample_digest()
    started = time.monotonic()
    first = renderer.render(digest)
    second = renderer.render(digest)  # the same round's next digest: the template is not tried again
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert [p for p in first.problems if p.runtime and re.search(word, p.message) and name in p.path], first.problems
    for rendered in (first, second):
        assert len(rendered.text) <= MAX_DIGEST_CHARS and len(rendered.html) <= MAX_DIGEST_CHARS
        assert rendered.subject and rendered.text.strip() and rendered.html.strip()
        for item in digest.items:
            assert item.title in rendered.text  # every notice is still there, by the built-in template
    if name.startswith("items/"):
        assert all(len(line) <= MAX_ITEM_CHARS for line in first.text.splitlines())
    ledger("templates", inputs=1, faults=1)


def test_templates_the_time_limit_does_not_touch_renders_that_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUBAN_TEMPLATE_SECONDS", "0.2")
    renderer = DigestRenderer(RULES / "templates")
    for _ in range(50):
        rendered = renderer.render(sample_digest())
        assert not rendered.problems
    time.sleep(0.4)  # a deadline left armed would now interrupt this thread
    assert sum(range(1000)) == 499500
