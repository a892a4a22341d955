"""conda's files in and out: environment.yml read into an Environment; real locks (a conda environment solved
from the suite's channel with a PyPI part, and a uv lock) written as conda-lock, requirements and
environment.yml, read back by conda-lock itself, by uv and by `read_environment_yml`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conda_lock.lockfile import parse_conda_lock_file

from satchel.core.errors import EnvironmentResolutionError
from satchel.packager.environment import Environment
from satchel.packager.environment_files import export_lock, read_environment_yml
from satchel.packager.locking import lock_environment
from satchel.packager.resolvers.base import Lock
from satchel.packager.resolvers.uv import run_uv
from tests.environments.conftest import RUNTIME

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def conda_lock(conda_channel) -> Lock:
    env = Environment(
        conda=["humanize=4.12", "markupsafe", "fastavro"],
        pypi=["six==1.17.0"],
        channels=[str(conda_channel.path)],
    )
    return lock_environment(env, RUNTIME)


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def entries(parsed) -> dict[tuple[str, str], tuple[str, str, str | None, str | None, str]]:
    return {
        (p.manager, p.name): (p.version, p.url, p.hash.md5, p.hash.sha256, p.platform) for p in parsed.package
    }


# --- conda-lock -------------------------------------------------------------------------------------


def test_conda_lock_file_of_a_conda_lock_read_by_conda_lock(conda_lock: Lock, tmp_path: Path) -> None:
    path = written(tmp_path, "conda-lock.yml", export_lock(conda_lock, "conda-lock"))
    parsed = parse_conda_lock_file(path)
    expected = {
        (p.manager, p.name): (p.version, p.url, p.md5, p.sha256, "linux-64") for p in conda_lock.packages
    }
    assert entries(parsed) == expected
    assert ("pip", "six") in expected and ("conda", "markupsafe") in expected
    assert parsed.metadata.platforms == ["linux-64"]
    assert [c.url for c in parsed.metadata.channels] == [c.rstrip("/") for c in conda_lock.channels]
    assert set(parsed.metadata.content_hash) == {"linux-64"}
    assert parsed.metadata.custom_metadata["satchel_env_id"] == conda_lock.env_id
    by_name = {p.name: p for p in parsed.package}
    assert all(p.categories == {"main"} for p in parsed.package)
    assert by_name["markupsafe"].build == "py311_0" and by_name["markupsafe"].dependencies == {
        "python": "3.11.*"
    }


def test_conda_lock_rendered_by_conda_lock_as_an_explicit_file(conda_lock: Lock, tmp_path: Path) -> None:
    path = written(tmp_path, "conda-lock.yml", export_lock(conda_lock, "conda-lock"))
    proc = subprocess.run(
        [sys.executable, "-m", "conda_lock", "render", "-k", "explicit", "-p", "linux-64", path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    explicit = (tmp_path / "conda-linux-64.lock").read_text()
    for package in conda_lock.conda_packages():
        assert f"{package.url}#{package.md5}\n" in explicit
    six = next(p for p in conda_lock.pypi_packages() if p.name == "six")
    assert f"# pip six @ {six.url}#sha256={six.sha256}" in explicit


def test_conda_lock_file_of_a_uv_lock_has_pip_entries(lock: Lock, tmp_path: Path) -> None:
    parsed = parse_conda_lock_file(written(tmp_path, "conda-lock.yml", export_lock(lock, "conda-lock")))
    expected = {("pip", p.name): (p.version, p.url, None, p.sha256, "linux-64") for p in lock.packages}
    assert entries(parsed) == expected and ("pip", "humanize") in expected
    assert parsed.metadata.channels == [] and parsed.metadata.custom_metadata["satchel_python"] == "3.11"


# --- requirements -----------------------------------------------------------------------------------


def test_requirements_of_a_uv_lock_install_with_their_hashes(lock: Lock, tmp_path: Path) -> None:
    text = export_lock(lock, "requirements")
    assert "conda" not in text
    for package in lock.packages:
        assert f"{package.name}=={package.version} \\\n    --hash=sha256:{package.sha256}\n" in text
    path = written(tmp_path, "requirements.txt", text)
    target = tmp_path / "target"
    proc = run_uv(
        [
            "pip",
            "install",
            "--require-hashes",
            "-r",
            str(path),
            "--target",
            str(target),
            "--python",
            sys.executable,
        ]
    )
    assert proc.returncode == 0, proc.stderr
    installed = {p.name.split("-")[0].lower() for p in target.glob("*.dist-info")}
    assert installed == {p.name.replace("-", "_") for p in lock.packages}


def test_requirements_of_a_conda_lock_hold_its_pypi_part_and_name_the_rest(conda_lock: Lock) -> None:
    text = export_lock(conda_lock, "requirements")
    requirements = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert requirements == ["six==1.17.0 \\"]
    six = next(p for p in conda_lock.packages if p.name == "six")
    assert f"--hash=sha256:{six.sha256}" in text
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("Not included: the 4 conda packages" in line and "python=3.11.7" in line for line in header)


def test_requirements_of_a_pure_conda_lock_are_refused(conda_channel) -> None:
    pure = lock_environment(
        Environment(conda=["humanize", "fastavro"], channels=[str(conda_channel.path)]), RUNTIME
    )
    assert not pure.pypi_packages()
    with pytest.raises(
        ValueError, match="has only conda packages .* export it as conda-lock or environment.yml"
    ):
        export_lock(pure, "requirements")


def test_unknown_format() -> None:
    lock = Lock(resolver="uv", python="3.11", platform="linux-x86_64", packages=())
    with pytest.raises(ValueError, match="unknown export format 'pylock'; formats: conda-lock, requirements"):
        export_lock(lock, "pylock")


# --- environment.yml ----------------------------------------------------------------------------------


def test_environment_yml_of_a_conda_lock_resolves_to_the_same_environment(
    conda_lock: Lock, tmp_path: Path
) -> None:
    text = export_lock(conda_lock, "environment.yml", name="markup")
    path = written(tmp_path, "environment.yml", text)
    env = read_environment_yml(path)
    assert env.python == "3.11" and env.pypi == ("six==1.17.0",)
    # conda's name=version=build, as the resolver's strict parser takes it
    assert "python ==3.11.7 h0_cp311" in env.conda and "markupsafe ==2.1.5 py311_0" in env.conda
    assert env.channels == tuple(c.rstrip("/") for c in conda_lock.channels)
    assert "name: markup\n" in text
    again = lock_environment(env, RUNTIME)
    assert again.env_id == conda_lock.env_id


def test_environment_yml_of_a_uv_lock_is_python_and_pip(lock: Lock, tmp_path: Path) -> None:
    env = read_environment_yml(written(tmp_path, "environment.yml", export_lock(lock, "environment.yml")))
    assert env.conda == ("python=3.11",) and env.python == "3.11"
    assert sorted(env.pypi) == sorted(f"{p.name}=={p.version}" for p in lock.packages)
    assert env.channels == ("conda-forge",)  # "nodefaults" says only these, as Satchel always solves


# --- reading environment.yml ----------------------------------------------------------------------


def test_conda_spec_forms_channels_and_pip(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        "environment.yml",
        """
name: ml
channels:
  - conda-forge
dependencies:
  - python=3.10
  - numpy=2.1
  - pandas==2.2.3
  - scikit-learn>=1.5
  - bioconda::pysam
  - scipy 1.14.*
  - pip
  - pip:
      - humanize==4.12.1
      - "requests[socks]>=2.31; python_version >= '3.8'"
""",
    )
    env = Environment.from_file(path)  # dispatches on the suffix
    assert env.python == "3.10"
    assert env.conda == (
        "python=3.10",
        "numpy=2.1",
        "pandas==2.2.3",
        "scikit-learn>=1.5",
        "bioconda::pysam",
        "scipy 1.14.*",
        "pip",
    )
    assert env.channels == ("conda-forge", "bioconda")
    assert env.pypi == ("humanize==4.12.1", "requests[socks]>=2.31; python_version >= '3.8'")


@pytest.mark.parametrize(
    ("python_dep", "given", "expected", "spec"),
    [
        ("python==3.12.1", None, "3.12", "python==3.12.1"),
        ("python=3.12.1=h0_cp312", "3.12", "3.12", "python ==3.12.1 h0_cp312"),
        ("python>=3.10", "3.13", "3.13", "python>=3.10"),
        ("python", None, f"{sys.version_info.major}.{sys.version_info.minor}", "python"),
    ],
)
def test_python_version_from_the_file_the_argument_or_this_interpreter(
    tmp_path: Path, python_dep: str, given: str | None, expected: str, spec: str
) -> None:
    path = written(tmp_path, "env.yaml", f"dependencies:\n  - {python_dep}\n  - six\n")
    env = read_environment_yml(path, python=given)
    assert env.python == expected and env.conda[0] == spec
    assert env.channels == ("conda-forge",)  # no channels: Satchel's default


def test_the_python_argument_is_checked_as_environment_checks_it(tmp_path: Path) -> None:
    path = written(tmp_path, "environment.yml", "dependencies: [python=3.10]\n")
    with pytest.raises(TypeError, match="as a number 3.10 is 3.1"):
        read_environment_yml(path, python=3.10)
    assert read_environment_yml(path, python="3.10.4").python == "3.10"


def test_pip_only_file_is_a_pypi_environment(tmp_path: Path) -> None:
    path = written(
        tmp_path, "environment.yml", "channels: [conda-forge]\ndependencies:\n  - pip: [six==1.17.0]\n"
    )
    env = read_environment_yml(path, python="3.11")
    assert not env.is_conda and env.pypi == ("six==1.17.0",) and env.python == "3.11"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "dependencies: [numpy\n",
            r"environment.yml:2: not a YAML document: while parsing a flow sequence, expected ',' or '\]'",
        ),
        (
            "- numpy\n- scipy\n",
            r"environment.yml:1: expected a mapping with channels and dependencies, not a list",
        ),
        ("dependencies: numpy=2.1\n", r"environment.yml:1: dependencies: expected a list of conda specs"),
        (
            "dependencies:\n  - numpy\n  - pipx:\n      - six\n",
            r"environment.yml:3: dependencies: unknown key 'pipx' in an entry \(only `pip:`",
        ),
        (
            "dependencies:\n  - pip:\n      - six\n      - -r requirements.txt\n",
            r"environment.yml:4: pip: '-r requirements.txt': options such as '-r' are not supported",
        ),
        (
            "dependencies:\n  - pip:\n      - --index-url https://example.org/simple\n",
            r"environment.yml:3: pip: .*options such as '--index-url' are not supported; the index is uv's",
        ),
        (
            "dependencies:\n  - pip:\n      - six===\n",
            r"environment.yml:3: pip: 'six===' is not a valid requirement",
        ),
        (
            "dependencies:\n  - pip: six\n",
            r"environment.yml:2: pip: expected a list of pip requirement strings",
        ),
        (
            "dependencies:\n  - numpy 2.1\n",
            r"environment.yml:2: dependencies: 'numpy 2.1' is not a conda match spec: .*'==2.1' or '2.1.\*'",
        ),
        (
            "dependencies:\n  - numpy===2\n",
            r"environment.yml:2: dependencies: 'numpy===2' is not a conda match spec",
        ),
        (
            "dependencies:\n  - num py = 1\n",
            r"environment.yml:2: dependencies: 'num py = 1' is not a conda match spec",
        ),
        (
            "dependencies:\n  - numpy\n  - 3.11\n",
            r"environment.yml:3: dependencies: expected a conda spec string .*float 3.11",
        ),
        (
            "channels: conda-forge\n",
            r"environment.yml:1: channels: expected a list of channel names or URLs, not a string",
        ),
        (
            "name: x\ndependancies: [numpy]\n",
            r"environment.yml:2: unknown key 'dependancies' \(known keys: name, prefix",
        ),
        (
            "variables:\n  A: b\n",
            r"environment.yml:1: unknown key 'variables' \(Satchel does not set environment variables",
        ),
        (
            "dependencies: [python=3.11]\n",
            r"environment.yml: the file pins python 3.11, but python='3.10' was given",
        ),
        (
            "a: 1\n---\nb: 2\n",
            r"environment.yml:2: not a YAML document: expected a single document in the stream, but found another",
        ),
    ],
)
def test_bad_files_are_one_clear_error_naming_the_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = written(tmp_path, "environment.yml", text)
    with pytest.raises(EnvironmentResolutionError, match=message) as info:
        read_environment_yml(path, python="3.10")
    assert str(path) in str(info.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="environment file not found: .*nope.yml"):
        read_environment_yml(tmp_path / "nope.yml")


def test_an_empty_file_is_an_empty_environment(tmp_path: Path) -> None:
    env = read_environment_yml(written(tmp_path, "environment.yml", "name: empty\n"), python="3.11")
    assert env == Environment(python="3.11")
