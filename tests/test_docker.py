"""The Dockerfiles cannot be built here (no Docker engine): lint them, and rebuild the lean deploy
image's file layout in a folder to check that the runtime imports from exactly what it copies."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile*"))
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    out = subprocess.run([HADOLINT, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _deploy_image_layout(dest: Path) -> None:
    """Apply Dockerfile.deploy's COPY and `RUN rm` lines to `dest`."""
    text = (ROOT / "docker" / "Dockerfile.deploy").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, target = line.split()[1:]
            for src in sources:
                path = ROOT / src
                out = dest / target / (path.name if not target.endswith(path.name) else "")
                out.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    shutil.copytree(path, dest / target, dirs_exist_ok=True)
                else:
                    shutil.copy(path, dest / target / path.name)
        elif line.startswith("RUN rm "):
            for name in re.split(r"\s+", line[len("RUN rm ") :].split("&&")[0].strip()):
                target = dest / name
                assert target.exists(), f"Dockerfile.deploy removes {name}, which it never copied"
                target.unlink()


def test_lean_deploy_layout_imports_the_runtime_without_heavy_packages(tmp_path):
    _deploy_image_layout(tmp_path)
    code = (
        "import sys\n"
        "for m in ('torch', 'mujoco', 'gymnasium', 'hydra', 'stable_baselines3'): sys.modules[m] = None\n"
        "import sim2real.deploy\n"
        "from sim2real.deploy import load_policy\n"
        "assert sim2real.deploy.__file__.startswith(sys.argv[1]), sim2real.deploy.__file__\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import site; site.main(); import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + code,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
