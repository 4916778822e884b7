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
            if target.startswith("/"):
                continue  # build-time inputs (constraints, install script), not the runtime's files
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


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [line for line in re.findall(r"```bash\n(.*?)```", text, re.S) for line in line.splitlines()]


def _readme_setup(marker: str) -> str:
    """The setup part (before the first `&& .venv/bin/<run>`) of README's command that contains `marker`."""
    (cmd,) = [c for c in _readme_commands() if c.startswith("python3 -m venv .venv") and marker in c]
    return cmd


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = _readme_setup("pytest")
    assert test_cmd in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_training_images_install_with_the_readme_setup_line(name):
    main_cmd = _readme_setup("sim2real pipeline")
    setup = main_cmd.split(" && .venv/bin/sim2real")[0]
    run_lines = [
        line[len("RUN ") :]
        for line in (ROOT / "docker" / name).read_text().splitlines()
        if line.startswith("RUN ")
    ]
    assert setup in run_lines, f"{name} does not run README's setup line {setup!r}"
    assert "-c constraints.txt" in setup


def test_deploy_image_and_ci_take_the_same_dds_step():
    assert "scripts/install-dds.sh .venv" in _readme_setup("pytest")
    assert "/scripts/install-dds.sh /opt/venv" in (ROOT / "docker" / "Dockerfile.deploy").read_text()


def test_constraints_pin_every_installed_distribution():
    """An image built next year resolves the same versions only if the lock names every package."""
    from importlib import metadata

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    import sysconfig

    # only what pip installed into site-packages (Ray puts vendored copies on sys.path once imported)
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    missing = []
    for dist in metadata.distributions():
        if Path(str(dist.locate_file(""))).resolve() not in site:
            continue
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name in ("sim2real", "pip", "setuptools", "wheel"):
            continue
        if pins.get(name) != dist.version.split("+")[0]:
            missing.append(f"{name}=={dist.version} (lock: {pins.get(name)})")
    assert not missing, "constraints.txt is stale, re-run scripts/lock.sh: " + ", ".join(sorted(missing))


def test_compose_services_build_from_repo_dockerfiles_and_run_valid_commands():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"pipeline", "robot-sim", "controller"} <= set(services)
    for name, svc in services.items():
        dockerfile = ROOT / svc["build"]["dockerfile"]
        assert dockerfile.is_file(), f"service {name}: no {dockerfile}"
    sim = [sys.executable, "-m", "sim2real", *services["robot-sim"]["command"], "--cfg", "job"]
    out = subprocess.run(sim, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and "host: 0.0.0.0" in out.stdout, out.stderr[-2000:]
    from sim2real.deploy.__main__ import parse

    args = parse(services["controller"]["command"])
    assert (args.host, args.bind, str(args.export_dir)) == ("robot-sim", "0.0.0.0", "/run/export")
