"""The linter (ruff.toml: pycodestyle and pyflakes at 120 columns) finds nothing in the repository."""
import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert "No module named ruff" not in done.stderr, "the linter is in the test extra: pip install -e '.[test]'"
    assert done.returncode == 0, done.stdout + done.stderr
