"""``make deploy`` as a first-time user meets it: AWS access is checked before anything is built or asked, and the
deploy runs without questions from the committed ``samconfig.toml`` and this checkout's saved answers.

Each test runs the real Makefile and scripts in a copy of the project's deploy files (so ``deploy.local.toml`` and
the build output are the test's own), with the project's ``.venv``. AWS itself cannot be reached here: STS is
moto's server over HTTP, and ``sam`` is a stub on ``SAM_CLI`` that records how it was called (the one fault we cannot
cause otherwise: a real ``sam deploy`` needs an AWS account). The instance metadata service is switched off in the
environment, so no test sends traffic off this machine.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.local_aws import LocalAws, start_local_aws
from infra.template import load_template

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("Makefile", "pyproject.toml", "samconfig.toml", "template.yaml", "examples", "infra")
STUB_SAM = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$(dirname "$0")/sam-args.txt"
echo "sam stub: deploy finished"
"""
FIRST_DEPLOY_LIMIT_SECONDS = 10  # issue 21: a deploy without credentials stops within this, asking nothing


@dataclass(frozen=True)
class Project:
    root: Path
    stub_dir: Path

    @property
    def sam_args(self) -> list[str] | None:
        recorded = self.stub_dir / "sam-args.txt"
        return recorded.read_text(encoding="utf-8").splitlines() if recorded.exists() else None

    @property
    def settings(self) -> dict[str, object]:
        return tomllib.loads((self.root / "deploy.local.toml").read_text(encoding="utf-8"))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)  # copy2: the venv's install stamp stays newer than pyproject.toml
    (root / ".venv").symlink_to(ROOT / ".venv")
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir()
    sam = stub_dir / "sam"
    sam.write_text(STUB_SAM, encoding="utf-8")
    sam.chmod(0o755)
    return Project(root, stub_dir)


@pytest.fixture(scope="module")
def sts() -> Iterator[LocalAws]:
    with start_local_aws() as aws:
        yield aws


def environment(project: Project, home: Path, **extra: str) -> dict[str, str]:
    """A user's shell with no AWS configuration: nothing in the environment, an empty home."""
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance metadata service from a test
        "SAM_CLI": str(project.stub_dir / "sam"),
        **extra,
    }


def with_credentials(project: Project, home: Path, sts: LocalAws, **extra: str) -> dict[str, str]:
    return environment(
        project,
        home,
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="example-secret",
        AWS_ENDPOINT_URL=sts.endpoint_url,
        **extra,
    )


def fake_build(project: Project) -> None:
    """What `make build` leaves for `sam deploy` (the real build needs minutes and PyPI; --no-build uses it)."""
    built = project.root / ".aws-sam" / "build"
    built.mkdir(parents=True)
    shutil.copy(project.root / "template.yaml", built / "template.yaml")


def test_without_credentials_make_deploy_stops_at_once_with_one_line_asking_and_building_nothing(
    project: Project, tmp_path: Path
) -> None:
    # Given a machine with no AWS credentials (nothing in the environment, no ~/.aws) and no terminal to answer on
    env = environment(project, tmp_path / "home")

    # When the user runs the README's deploy command
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "deploy", "CONFIG=examples/gateway.yaml"],
        cwd=project.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=FIRST_DEPLOY_LIMIT_SECONDS,  # the bound, not a measurement: the run takes about a second
        check=False,
    )
    elapsed = time.monotonic() - started

    # Then it fails with one line that says what to do, before building or deploying anything
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(ours) == 1, result.stderr
    assert ours[0].startswith("deploy: no AWS credentials found: run `aws configure`")
    assert "nothing was built or deployed" in ours[0]
    assert result.stdout == ""  # no build step ran, no question was printed
    assert project.sam_args is None and not (project.root / ".aws-sam").exists()
    assert not (project.root / "deploy.local.toml").exists()
    assert elapsed < FIRST_DEPLOY_LIMIT_SECONDS


def test_credentials_without_a_region_stop_with_one_line_when_nobody_can_answer(
    project: Project, tmp_path: Path, sts: LocalAws
) -> None:
    env = with_credentials(project, tmp_path / "home", sts)

    result = subprocess.run(
        ["bash", "infra/scripts/deploy.sh", "--config", "examples/gateway.yaml"],
        cwd=project.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "deploy: no AWS region: pass REGION=<region> (e.g. `make deploy CONFIG=my-gateway.yaml REGION=eu-west-1`) "
        "or set AWS_REGION; nothing was built or deployed"
    ]
    assert project.sam_args is None


def test_credentials_that_cannot_be_checked_stop_with_one_line(project: Project, tmp_path: Path) -> None:
    # Given credentials, and no STS to check them with (a loopback port where nothing listens any more)
    with start_local_aws() as gone:
        endpoint = gone.endpoint_url
    env = environment(
        project,
        tmp_path / "home",
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="expired",
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="eu-west-1",
    )

    result = subprocess.run(
        ["bash", "infra/scripts/deploy.sh", "--config", "examples/gateway.yaml"],
        cwd=project.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("deploy: cannot check the AWS credentials:")
    assert project.sam_args is None


def run_on_a_terminal(command: list[str], cwd: Path, env: Mapping[str, str], answers: Mapping[str, str]) -> str:
    """Run ``command`` with a pseudo-terminal as its stdin and stdout; answer each prompt in ``answers`` (the text
    that ends the prompt -> the line typed). Returns everything it printed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    pending = dict(answers)
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                raise AssertionError(f"no output for 60 s; so far: {seen.decode(errors='replace')}")
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            for prompt, answer in list(pending.items()):
                if seen.rstrip().endswith(prompt.encode()):
                    os.write(controller, answer.encode() + b"\n")
                    del pending[prompt]
    finally:
        os.close(controller)
        process.wait(timeout=60)
    assert process.returncode == 0, seen.decode(errors="replace")
    assert not pending, f"never asked: {list(pending)}"
    return seen.decode(errors="replace")


def test_a_first_deploy_asks_only_the_stack_name_and_region_and_a_second_asks_nothing(
    project: Project, tmp_path: Path, sts: LocalAws
) -> None:
    # Given credentials AWS accepts, a finished build, and no answers saved yet
    env = with_credentials(project, tmp_path / "home", sts)
    fake_build(project)
    deploy = ["bash", "infra/scripts/deploy.sh", "--no-build"]

    # When the user deploys for the first time on a terminal, typing a region and keeping the default stack name
    first = run_on_a_terminal(deploy, project.root, env, {"AWS region:": "eu-west-1", "Stack name [mcp-gateway]:": ""})

    # Then those were the only questions, and sam deploy ran non-interactively with the committed samconfig.toml
    assert first.count("AWS region") == 1 and first.count("Stack name") == 1
    assert "Is this okay" not in first
    expected = [
        "deploy",
        "--config-file", str(project.root / "samconfig.toml"),
        "--stack-name", "mcp-gateway",
        "--region", "eu-west-1",
    ]  # fmt: skip
    assert project.sam_args == expected
    assert project.settings == {"stack_name": "mcp-gateway", "region": "eu-west-1", "parameters": {}}

    # When they deploy again on the same terminal, answering nothing
    (project.stub_dir / "sam-args.txt").unlink()
    second = run_on_a_terminal(deploy, project.root, env, {})

    # Then nothing is asked and the same stack is deployed
    assert "AWS region" not in second and "Stack name" not in second
    assert project.sam_args == expected


def test_template_parameters_are_checked_saved_and_kept_for_the_next_deploy(
    project: Project, tmp_path: Path, sts: LocalAws
) -> None:
    env = with_credentials(project, tmp_path / "home", sts, AWS_REGION="us-west-2")
    fake_build(project)

    def deploy(*params: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", "deploy", "CONFIG=examples/gateway.yaml", *params],
            cwd=project.root,
            env={**env, "MAKEFLAGS": ""},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # A misspelt parameter stops before anything else, naming the closest one
    typo = deploy("PARAMS=Stag=staging")
    assert typo.returncode != 0
    assert "deploy: template.yaml has no parameter 'Stag'; did you mean Stage?" in typo.stderr.splitlines()
    assert project.sam_args is None

    # Without a terminal, the defaults apply (the environment's region), and parameters are saved with them
    (project.root / "infra" / "scripts" / "build.sh").write_text("echo '==> build: (skipped by the test)'\n")
    done = deploy("PARAMS=Stage=staging AlarmEmail=ops@example.com")
    assert done.returncode == 0, done.stderr
    assert project.settings == {
        "stack_name": "mcp-gateway",
        "region": "us-west-2",
        "parameters": {"AlarmEmail": "ops@example.com", "Stage": "staging"},
    }
    args = project.sam_args
    assert args is not None
    overrides = args[args.index("--parameter-overrides") + 1 :]
    assert overrides == ["AlarmEmail=ops@example.com", "Stage=staging"]

    # A later deploy without PARAMS keeps them
    again = deploy()
    assert again.returncode == 0, again.stderr
    args = project.sam_args
    assert args is not None and args[args.index("--parameter-overrides") + 1 :] == overrides


def test_the_committed_samconfig_makes_sam_deploy_ask_nothing() -> None:
    # The settings that keep `sam deploy` from prompting: no change-set confirmation, the IAM capability given, an
    # artifact bucket it resolves itself. (--guided is what asks the "has no authentication" questions.)
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["confirm_changeset"] is False
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert "guided" not in deploy and "parameter_overrides" not in deploy  # defaults live in template.yaml
    assert not (set(config["default"]) - {"deploy"})  # `sam build` and `sam validate` keep their own defaults
    assert "samconfig.toml" not in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "deploy.local.toml" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert load_template(ROOT / "template.yaml")["Parameters"]  # every parameter has its default there
