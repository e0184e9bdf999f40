"""The benchmark scripts still run against the package they measure."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def _package_imports(path: Path) -> list[tuple[str, str]]:
    """[(module, name)] of every ``from speech2flame... import name`` in a script, nested ones too."""
    tree = ast.parse(path.read_text(), str(path))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "speech2flame"
            for alias in node.names]


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_benchmark_imports_from_the_package_exist(path):
    # most benchmarks import inside main(), after parsing arguments, so a renamed function would
    # only show when someone runs them for the docs' figures
    missing = []
    for module, name in _package_imports(path):
        owner = importlib.import_module(module)
        if not hasattr(owner, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{path.name} imports names the package no longer has: {missing}"


def test_heldout_voices_benchmark_measures_a_small_corpus(tmp_path):
    from speech2flame import synth_corpus

    corpus = tmp_path / "corpus"
    synth_corpus.write_corpus(corpus, 0.004, show_progress=False, festival="none", flite="none", mbrola="none")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "heldout_voices.py"), "--corpus", str(corpus),
                          "--split", "train", "--limit", "2", "--no-phonetic", "--no-words", "--best"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in out.stdout.splitlines() if line.startswith("| ")}
    assert rows["teacher"].split("|")[2].strip().startswith("100% (")  # the teacher closes its own bilabials
    assert any(label.startswith("neural") and "phone recognition" in label for label in rows), out.stdout
    assert out.stdout.splitlines()[-1] == "best: default"  # the one model measured
