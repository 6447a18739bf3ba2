"""The shipped `.pre-commit-hooks.yaml`, exercised with the real `pre-commit` as a user would.

A copy of the current working tree becomes a throw-away git repository (the tree may hold
changes that are not committed yet). A user project points its `.pre-commit-config.yaml` at
that repository with `rev` = its HEAD and `id: mschema-lint`; pre-commit then installs mschema
into its own virtualenv with pip (once per test session: every project here shares one
PRE_COMMIT_HOME) and runs the hook on the project's `.machine` files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD_MACHINE = """\
# A site-local variant of q35: the stdlib, the shipped machine, and one more option.
use "buses"
use "pc"

machine site-q35 extends pc-q35-7.2 {
    doc "q35 as our site runs it"
    option site-usb: bool = false
}
"""

BROKEN_MACHINE = """\
use "buses"
use "pc"

machine broken-q35 extends pc-q35-7.2 {
    devices {
        bogus: no-such-device
    }
}
"""

# Variables that would point git at some other repository (e.g. when pytest runs in a hook).
GIT_LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
)


def run(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def git(cwd: Path, env: Mapping[str, str], *args: str) -> str:
    done = run(["git", "-c", "commit.gpgsign=false", *args], cwd, env)
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def init_repo(path: Path, env: Mapping[str, str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    git(path, env, "init", "-q")
    git(path, env, "config", "user.name", "mschema tests")
    git(path, env, "config", "user.email", "tests@mschema.invalid")


def working_tree_files(env: Mapping[str, str]) -> list[str]:
    """The checkout's files as a user has them: tracked or new, minus what git ignores."""
    done = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT, env)
    if done.returncode == 0:
        return [name for name in done.stdout.split("\0") if name and (ROOT / name).is_file()]
    # Not a git checkout (e.g. an unpacked sdist): everything but caches.
    skip = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"}
    return [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
    ]


class Project:
    """A user's git repository with a `.pre-commit-config.yaml` using the mschema hook."""

    def __init__(self, path: Path, hook_repo: Path, rev: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        init_repo(path, env)
        (path / ".pre-commit-config.yaml").write_text(
            "repos:\n"
            f"  - repo: {hook_repo}\n"
            f"    rev: {rev}\n"
            "    hooks:\n"
            "      - id: mschema-lint\n"
        )
        machines = path / "machines"
        machines.mkdir()
        (machines / "site-q35.machine").write_text(GOOD_MACHINE)
        git(path, env, "add", "-A")
        git(path, env, "commit", "-q", "-m", "site machines")

    def pre_commit(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(["pre-commit", *args], self.path, self.env, timeout=timeout)


@pytest.fixture(scope="module")
def make_project(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Project]:
    """Builds projects that share one hook repository and one installed hook environment."""
    if shutil.which("pre-commit") is None:
        message = "pre-commit not found on PATH; `pip install .[test]`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    base = tmp_path_factory.mktemp("precommit")
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARIABLES}
    env["PRE_COMMIT_HOME"] = str(base / "pre-commit-home")
    env.pop("PRE_COMMIT", None)
    env.pop("SKIP", None)

    # A git repository holding a copy of the current working tree of mschema.
    hook_repo = base / "mschema"
    for name in working_tree_files(env):
        target = hook_repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert (hook_repo / ".pre-commit-hooks.yaml").is_file()
    init_repo(hook_repo, env)
    git(hook_repo, env, "add", "-A")
    git(hook_repo, env, "commit", "-q", "-m", "mschema working tree")
    rev = git(hook_repo, env, "rev-parse", "HEAD").strip()

    count = 0

    def make() -> Project:
        nonlocal count
        count += 1
        return Project(base / f"project{count}", hook_repo, rev, env)

    # Install the hook's environment once (pip install of mschema; may take a while).
    first = make()
    done = first.pre_commit("install-hooks", timeout=900)
    assert done.returncode == 0, f"pre-commit install-hooks failed:\n{done.stdout}{done.stderr}"
    return make


def test_hook_passes_on_good_machine(make_project: Callable[[], Project]) -> None:
    project = make_project()
    done = project.pre_commit("run", "--all-files")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # The hook really ran on the file, rather than being skipped for want of files.
    assert "mschema lint" in output
    assert "Passed" in output
    assert "Skipped" not in output


def test_hook_fails_on_unknown_device_type(make_project: Callable[[], Project]) -> None:
    project = make_project()
    (project.path / "machines" / "broken.machine").write_text(BROKEN_MACHINE)
    git(project.path, project.env, "add", "machines/broken.machine")
    done = project.pre_commit("run", "--all-files")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Failed" in output
    assert "error[E0202]" in output
    assert "machines/broken.machine:6:16: error[E0202]: unknown device type `no-such-device`" in (
        output
    )
    # The good file is linted in the same run and is not blamed.
    assert "site-q35.machine:" not in output
