"""``make deploy CONFIG=my-gateway.yaml``: check AWS access first, build, then ``sam deploy`` without questions.

The order is what a first-time user needs: nothing is built and nothing is asked before the credentials and the
region are known to work. Missing credentials or region stop the command with one line saying what to do (the
credential lookup reads only the environment and ``~/.aws``, apart from the instance metadata service on EC2, which
botocore bounds to one second); credentials that AWS refuses stop it the same way, after one STS
``GetCallerIdentity`` call.

What is asked, and where the answers live:

- ``samconfig.toml`` (committed) holds the SAM CLI's deploy settings that make ``sam deploy`` non-interactive:
  ``confirm_changeset = false``, ``capabilities``, ``resolve_s3``. Without ``--guided`` the SAM CLI asks nothing,
  including the "has no authentication. Is this okay?" question it asks in guided mode for each route: the routes are
  public by design (the gateway is the OAuth authorization server and the proxy checks its own tokens).
- :data:`LOCAL_SETTINGS` (``deploy.local.toml``, gitignored) holds this checkout's own answers: the stack name, the
  region and the template parameters that differ from their defaults. A first deploy on a terminal asks for the region
  (default: ``AWS_REGION`` or the profile's) and the stack name (default ``mcp-gateway``), each only when the command
  line does not give it; a second deploy asks nothing. Without a terminal nothing is ever asked: the defaults apply,
  and a missing region is an error.

Template parameters: ``PARAMS="Stage=staging PublicBaseUrl=https://gw.example.com"`` (``--parameter NAME=VALUE``);
each is checked against the template and saved, so later deploys keep it. ``--no-build`` deploys the last build.
Arguments after ``--`` go to ``sam deploy`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parents[1]
SAM_CONFIG = REPO_ROOT / "samconfig.toml"
LOCAL_SETTINGS = REPO_ROOT / "deploy.local.toml"
TEMPLATE = REPO_ROOT / "template.yaml"
BUILD_SCRIPT = REPO_ROOT / "infra" / "scripts" / "build.sh"
BUILT_TEMPLATE = REPO_ROOT / ".aws-sam" / "build" / "template.yaml"
DEFAULT_SAM_CLI = REPO_ROOT / ".venv-sam" / "bin" / "sam"
DEFAULT_STACK_NAME = "mcp-gateway"

# A CloudFormation stack name (its documented pattern and length) and an AWS region name.
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _is_region(text: str) -> bool:
    return _REGION.match(text) is not None


def _is_stack_name(text: str) -> bool:
    return _STACK_NAME.match(text) is not None


NO_CREDENTIALS = (
    "no AWS credentials found: run `aws configure` (or `aws configure sso`), or set AWS_PROFILE or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then retry; nothing was built or deployed"
)
NO_REGION = (
    "no AWS region: pass REGION=<region> (e.g. `make deploy CONFIG=my-gateway.yaml REGION=eu-west-1`) or set "
    "AWS_REGION; nothing was built or deployed"
)


class DeployError(Exception):
    """Stops the deploy; the message is the one line the user sees."""


@dataclass(frozen=True)
class LocalSettings:
    """This checkout's answers (:data:`LOCAL_SETTINGS`)."""

    stack_name: str | None = None
    region: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> LocalSettings:
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as problem:
            raise DeployError(f"{_relative(path)} cannot be read ({problem}): fix or delete it") from None
        parameters = data.get("parameters", {})
        stack_name, region = data.get("stack_name"), data.get("region")
        if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
            raise DeployError(f'{_relative(path)}: [parameters] must hold NAME = "value" lines')
        if not isinstance(stack_name, str | None) or not isinstance(region, str | None):
            raise DeployError(f"{_relative(path)}: stack_name and region must be strings")
        return cls(stack_name, region, dict(parameters))

    def save(self, path: Path) -> None:
        lines = [
            "# Your answers for `make deploy` (this file is not committed; docs/deploy.md). Edit freely.",
            f"stack_name = {_toml_string(self.stack_name or DEFAULT_STACK_NAME)}",
        ]
        if self.region:
            lines.append(f"region = {_toml_string(self.region)}")
        lines += [
            "",
            "# Template parameters that differ from their defaults in template.yaml (docs/deploy.md).",
            "[parameters]",
        ]
        lines += [f"{name} = {_toml_string(value)}" for name, value in sorted(self.parameters.items())]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --- AWS access ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str


def environment_region() -> str | None:
    """The region the AWS SDK would use here: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, or the profile's."""
    import botocore.session

    # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION is the newer SDKs' name, honoured first.
    region = os.environ.get("AWS_REGION") or botocore.session.Session().get_config_variable("region")
    return region if isinstance(region, str) and region else None


def have_credentials() -> bool:
    """Whether the AWS SDK's credential chain finds credentials (no AWS call; a broken profile counts as none)."""
    import botocore.exceptions
    import botocore.session

    try:
        return botocore.session.Session().get_credentials() is not None
    except botocore.exceptions.BotoCoreError:
        return False


def caller_identity(region: str) -> Identity:
    """STS ``GetCallerIdentity``: proves the credentials work before anything is built."""
    import botocore.config
    import botocore.exceptions
    import botocore.session

    config = botocore.config.Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1})
    try:
        sts: Any = botocore.session.Session().create_client("sts", region_name=region, config=config)
        answer = sts.get_caller_identity()
    except botocore.exceptions.ClientError as problem:
        error = problem.response.get("Error", {})
        raise DeployError(
            f"AWS refused the credentials ({error.get('Code', 'error')}: {error.get('Message', '')}); "
            "renew them (e.g. `aws sso login`) and retry; nothing was built or deployed"
        ) from None
    except botocore.exceptions.BotoCoreError as problem:
        raise DeployError(f"cannot check the AWS credentials: {problem}; nothing was built or deployed") from None
    return Identity(str(answer.get("Account", "?")), str(answer.get("Arn", "?")))


# --- template parameters ------------------------------------------------------------------------------------


def template_parameters(template: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    from infra.template import load_template

    parameters = load_template(template).get("Parameters", {})
    return {str(name): dict(spec) for name, spec in parameters.items()}


def parse_parameters(text: Sequence[str], known: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``NAME=VALUE`` items (each may hold several, space-separated) checked against the template's parameters."""
    found: dict[str, str] = {}
    for item in (word for chunk in text for word in chunk.split()):
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise DeployError(f"parameter {item!r} is not NAME=VALUE (e.g. Stage=staging)")
        found[name] = value
    return check_parameters(found, known)


def check_parameters(parameters: Mapping[str, str], known: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``parameters`` if each names a template parameter, with an allowed value that ``sam deploy`` can carry."""
    for name, value in parameters.items():
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; the template's parameters: {', '.join(known)}"
            raise DeployError(f"template.yaml has no parameter {name!r}{hint}")
        allowed = known[name].get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            raise DeployError(f"parameter {name} must be one of {', '.join(str(v) for v in allowed)}, not {value!r}")
        if re.search(r"[\s,\"']", value):
            raise DeployError(f"parameter {name}: a value with spaces, commas or quotes cannot be passed to sam deploy")
    return dict(parameters)


# --- the deploy ---------------------------------------------------------------------------------------------


@dataclass
class Prompter:
    """Asks on a terminal; never asks when stdin is not one (CI, scripts): the default applies."""

    stdin: TextIO
    stdout: TextIO

    @property
    def interactive(self) -> bool:
        return self.stdin.isatty()

    def ask(self, question: str, default: str | None, valid: Callable[[str], bool], invalid: str) -> str | None:
        if not self.interactive:
            return default
        while True:
            shown = f" [{default}]" if default else ""
            self.stdout.write(f"{question}{shown}: ")
            self.stdout.flush()
            line = self.stdin.readline()
            if not line:  # end of input: no answer
                return default
            answer = line.strip() or default
            if answer and valid(answer):
                return answer
            self.stdout.write(f"{invalid}\n")


@dataclass(frozen=True)
class Plan:
    stack_name: str
    region: str
    parameters: dict[str, str]
    identity: Identity


def plan(args: argparse.Namespace, prompter: Prompter, settings_path: Path = LOCAL_SETTINGS) -> Plan:
    """Everything the deploy needs, checked, and this checkout's answers saved; raises :class:`DeployError`."""
    saved = LocalSettings.load(settings_path)
    known = template_parameters()
    parameters = check_parameters({**saved.parameters, **parse_parameters(args.parameter, known)}, known)
    for value, what in ((args.stack_name, "stack name"), (args.region, "region")):
        if value is not None and not value.strip():
            raise DeployError(f"the {what} given is empty")
    if not have_credentials():
        raise DeployError(NO_CREDENTIALS)
    region = args.region or saved.region
    if region is None:  # a first deploy: the environment's region is the default answer
        region = prompter.ask(
            "AWS region", environment_region(), _is_region, "A region looks like us-east-1 or eu-west-1."
        )
        if region is None:
            raise DeployError(NO_REGION)
    if not _REGION.match(region):
        raise DeployError(f"{region!r} is not an AWS region name (e.g. us-east-1)")
    identity = caller_identity(region)
    stack_name = args.stack_name or saved.stack_name
    if stack_name is None:
        stack_name = prompter.ask(
            "Stack name", DEFAULT_STACK_NAME, _is_stack_name, "Letters, digits and hyphens, starting with a letter."
        )
        stack_name = stack_name or DEFAULT_STACK_NAME
    if not _STACK_NAME.match(stack_name):
        raise DeployError(f"{stack_name!r} is not a CloudFormation stack name (letters, digits, hyphens)")
    updated = replace(saved, stack_name=stack_name, region=region, parameters=parameters)
    if updated != saved or not settings_path.exists():
        updated.save(settings_path)
    return Plan(stack_name, region, parameters, identity)


def sam_command(sam_cli: str, chosen: Plan, extra: Sequence[str]) -> list[str]:
    command = [
        sam_cli, "deploy",
        "--config-file", str(SAM_CONFIG),
        "--stack-name", chosen.stack_name,
        "--region", chosen.region,
    ]  # fmt: skip
    if chosen.parameters:
        command += ["--parameter-overrides", *(f"{k}={v}" for k, v in sorted(chosen.parameters.items()))]
    return command + list(extra)


def parse_arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="make deploy", description="Build and deploy the gateway's stack.")
    parser.add_argument("--config", help="the gateway config to ship (required unless --no-build)")
    parser.add_argument("--no-build", action="store_true", help="deploy the last build as it is")
    parser.add_argument("--stack-name", help=f"the CloudFormation stack (saved; default {DEFAULT_STACK_NAME})")
    parser.add_argument("--region", help="the AWS region (saved; default: AWS_REGION or your profile's)")
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="a template parameter (saved)"
    )
    argv = list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    return parser.parse_args(ours), extra


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        if not args.no_build and not args.config:
            raise DeployError("usage: make deploy CONFIG=path/to/gateway.yaml (the config ships inside the build)")
        if args.config and not Path(args.config).is_file():
            raise DeployError(f"gateway config {args.config!r} not found")
        sam_cli = os.environ.get("SAM_CLI") or str(DEFAULT_SAM_CLI)
        if args.no_build and not BUILT_TEMPLATE.exists():
            raise DeployError("no build found: run `make deploy CONFIG=...` (or `make build CONFIG=...`) first")
        chosen = plan(args, Prompter(sys.stdin, sys.stdout))
    except DeployError as problem:
        print(f"deploy: {problem}", file=sys.stderr)
        return 1
    print(
        f"==> deploy: stack {chosen.stack_name} in {chosen.region}, account {chosen.identity.account} "
        f"as {chosen.identity.arn} (answers saved in {_relative(LOCAL_SETTINGS)})",
        flush=True,
    )
    if not args.no_build:
        built = subprocess.run(["bash", str(BUILD_SCRIPT), args.config], cwd=REPO_ROOT, check=False)
        if built.returncode != 0:
            return built.returncode
    if not Path(sam_cli).exists():
        print(f"deploy: the SAM CLI is missing ({sam_cli}); `make build` installs it", file=sys.stderr)
        return 1
    command = sam_command(sam_cli, chosen, extra)
    print(f"==> deploy: {' '.join(command[1:])}", flush=True)
    # The SAM CLI's own output and exit status are the command's.
    return subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "SAM_CLI_TELEMETRY": "0"}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
