"""environment.yml (conda users) lists exactly the pip dependencies of pyproject.toml; requirements.lock
pins them all (and everything they pull in) to the versions the suite passed with; make uses it."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {r.replace(" ", "") for r in reqs}


def _environment_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have exactly one pip: section"
    return {r.replace(" ", "") for r in pip_lists[0]}


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_environment_pins_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert "\nmake test\n" in ci


# --- requirements.lock: the exact versions, installed by make -------------------------------------


def _name(requirement: str) -> str:
    """PEP 503 normalised project name of a requirement line (``Dlib_Bin==1`` -> ``dlib-bin``)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]).lower()


def _lock() -> dict[str, str]:
    lines = [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", p) for p in pins), \
        [p for p in pins if "==" not in p]
    lock = {_name(p): p.split("==")[1] for p in pins}
    assert len(lock) == len(pins), "a project is pinned twice"
    return lock


def test_lock_pins_every_declared_dependency_compatibly():
    """Every pyproject/environment.yml requirement is in the lock, at a version its pin allows."""
    lock = _lock()
    for req in _pyproject_requirements() | _environment_requirements():
        name = _name(req)
        assert name in lock, f"{req} is not in requirements.lock (regenerate it: see its header)"
        if "==" in req:
            assert lock[name] == req.split("==")[1], f"{req} vs requirements.lock {name}=={lock[name]}"
    assert {"numpy", "scipy", "pillow", "lpips", "pip", "setuptools"} <= set(lock)  # the examples


def test_make_installs_through_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    stamp = makefile[makefile.index("$(STAMP):"):makefile.index("touch $(STAMP)")]
    assert "requirements.lock" in stamp.splitlines()[0]  # a new lock re-installs
    installs = [line for line in stamp.splitlines() if "pip install" in line]
    assert installs and all("-c requirements.lock" in line for line in installs)


def test_make_lab_runs_as_root_and_as_a_user(tmp_path):
    """`make lab` passes --allow-root exactly when run as root (JupyterLab refuses root otherwise)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    jupyter = venv / "bin" / "jupyter"
    jupyter.write_text('#!/bin/sh\necho "jupyter $*"\n')  # stands in for JupyterLab: prints its arguments
    jupyter.chmod(0o755)
    stamp = venv / ".redestyle-installed"
    stamp.touch()
    later = max((ROOT / f).stat().st_mtime for f in ("pyproject.toml", "requirements.lock")) + 10
    os.utime(stamp, (later, later))  # up to date: make must not build a venv here
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "lab", f"VENV={venv}"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "jupyter lab notebooks" + (" --allow-root" if os.getuid() == 0 else "")
