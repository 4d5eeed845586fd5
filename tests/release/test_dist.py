"""The release as a packager and a new user meet it: the sdist and the wheel built and checked as
an index checks them, the licence in both, and the wheel installed into a fresh virtual
environment, run from a directory outside the repository."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=ROOT)
    run(BIN / "twine", "check", "--strict", *sorted(out.iterdir()), cwd=ROOT)
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_sdist_carries_the_licence_tests_docs_examples_and_benchmarks(dist: Path) -> None:
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "Makefile"):
        assert needed in names
    for folder in ("tests/", "docs/", "examples/", "benchmarks/"):
        assert any(n.startswith(folder) and n.endswith((".py", ".md")) for n in names), folder
    assert not any("__pycache__" in n or n.endswith(".sqlite") for n in names)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a fresh environment's install: a minute idle, several under load
def test_the_wheel_installs_into_a_fresh_environment_and_runs_outside_the_repository(
    dist: Path, tmp_path: Path
) -> None:
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "async_refimport/emulator/README.md" in names  # the docs link to it
    assert "async_refimport/py.typed" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as whl:
        # The emulator's pytest plugin is opt-in: it must not load into every pytest run.
        assert "pytest11" not in whl.read(entry_points).decode()

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", f"{wheel}[emulator]", cwd=tmp_path, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = run(env / "bin" / "refimport", "--version", cwd=elsewhere)
    expected = run(python, "-c", "import async_refimport; print(async_refimport.__version__)",
                   cwd=elsewhere).stdout.strip()  # fmt: skip
    assert version.stdout.strip() == f"refimport {expected}"
    demo = run(env / "bin" / "refimport", "demo", "--rows", "20", "-q", cwd=elsewhere)
    report = elsewhere / "refimport-demo" / "report.html"
    assert report.exists(), demo.stdout
    # 20 genomes and the two deliberately broken files; 5 were imported "by someone else".
    said = demo.stdout + demo.stderr
    assert "22 rows: 15 imported, 5 already present, 2 failed." in said, said
