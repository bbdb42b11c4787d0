"""The installed package minds its names: only `duban` lands in site-packages, and it works from there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
         str(ROOT)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{built.stderr[-2000:]}")
    wheel = next((work / "dist").glob("duban-*.whl"))
    target = work / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    return target


def test_the_wheel_installs_one_top_level_package_named_duban(installed: Path) -> None:
    names = sorted(entry.name for entry in installed.iterdir() if entry.name != "bin")
    assert [name for name in names if not name.endswith(".dist-info")] == ["duban"]
    for generic in ("engine", "store", "notifiers", "rules"):
        assert not (installed / generic).exists()
    top_level = next(installed.glob("duban-*.dist-info")) / "top_level.txt"
    if top_level.exists():
        assert top_level.read_text().split() == ["duban"]


def test_the_installed_package_carries_its_rules_templates_and_migrations(installed: Path) -> None:
    package = installed / "duban"
    for part in ("engine/evaluate.py", "store/models.py", "notifiers/render.py", "app/rounds.py", "cli/__init__.py",
                 "rules/lucheng/programme.yaml", "rules/huzhou/programme.yaml", "rules/templates/digest.txt.j2",
                 "rules/calendar-overrides.yaml", "store/migrations/env.py"):
        assert (package / part).is_file(), part
    assert list((package / "store" / "migrations" / "versions").glob("0001_*.py"))


def test_the_installed_command_works_away_from_the_checkout(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    for name in ("DUBAN_RULES", "DUBAN_DB", "DUBAN_CONFIG"):
        env.pop(name, None)

    def duban(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "duban", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import duban.engine.evaluate as m; print(m.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed))
    checked = duban("check")
    assert checked.returncode == 0, checked.stderr
    assert "规则检查通过" in checked.stdout
    upgraded = duban("--db", str(tmp_path / "d.db"), "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
