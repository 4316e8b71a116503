"""The import contracts of ``make lint`` (``[tool.importlinter]`` in pyproject.toml) hold, and fail
when a domain app reaches up into the edge."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("project", "orchestration", "chat", "agents")
LINT_IMPORTS = Path(shutil.which("lint-imports") or ROOT / ".venv" / "bin" / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The packages and the contracts, copied: a change to them cannot touch the repository."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_hold_in_the_repository(checkout: Path) -> None:
    result = lint_imports(checkout)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_a_domain_app_that_imports_the_edge_fails_the_lint(checkout: Path) -> None:
    (checkout / "chat" / "shortcut.py").write_text("from project.edge.handler import LeanHandler\n")
    result = lint_imports(checkout)
    assert result.returncode != 0
    assert "The domain apps never import the edge (project) BROKEN" in result.stdout
    assert "chat.shortcut -> project.edge.handler" in result.stdout


def test_a_provider_that_imports_django_fails_the_lint(checkout: Path) -> None:
    (checkout / "orchestration" / "providers" / "shortcut.py").write_text("from django.conf import settings\n")
    result = lint_imports(checkout)
    assert result.returncode != 0
    assert "orchestration.providers.shortcut -> django" in result.stdout
