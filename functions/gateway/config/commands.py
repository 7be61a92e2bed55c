"""``python -m gateway.config schema | check FILE [--stage STAGE] | compile FILE``."""

from __future__ import annotations

import json
import sys

from gateway.config.loading import ConfigError, compile_config, load_config
from gateway.config.stage_checks import development_switches, identity_warnings
from gateway.config.workspaces import GatewayConfig


def json_schema() -> dict[str, object]:
    schema = GatewayConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "MCP gateway configuration"
    return schema


def check_command(arguments: list[str]) -> int:
    """``check FILE [--stage STAGE]``: validate the file and, given a stage, judge its development switches as a
    Runtime of that stage would (refused: exit 1; allowed ones: a warning each). Returns the exit status."""
    stage = None
    if len(arguments) == 3 and arguments[1] == "--stage":
        stage = arguments[2]
    elif len(arguments) != 1:
        print("usage: python -m gateway.config check FILE [--stage local|dev|staging|prod]", file=sys.stderr)
        return 2
    from gateway.settings import STAGES

    if stage is not None and stage not in STAGES:
        print(f"--stage must be one of {', '.join(STAGES)}, not {stage!r}", file=sys.stderr)
        return 2
    path = arguments[0]
    try:
        config = load_config(path)
        found = [] if stage is None else development_switches(config, stage)
    except ConfigError as problem:
        print(problem, file=sys.stderr)
        return 1
    for switch in found:
        print(f"{path}: {'error' if switch.refused else 'warning'}: {switch}", file=sys.stderr)
    for warning in identity_warnings(config):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    if any(switch.refused for switch in found):
        return 1
    print(f"{path}: ok" + ("" if stage is None else f" for the {stage!r} stage"))
    return 0


def compile_command(arguments: list[str]) -> int:
    """``compile FILE``: validate the file and write its validated form beside it. Returns the exit status."""
    if len(arguments) != 1:
        print("usage: python -m gateway.config compile FILE", file=sys.stderr)
        return 2
    try:
        target = compile_config(arguments[0])
    except ConfigError as problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"{arguments[0]}: ok, validated form in {target}")
    return 0


def main() -> None:
    if sys.argv[1:] == ["schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
    elif sys.argv[1:2] == ["check"]:
        sys.exit(check_command(sys.argv[2:]))
    elif sys.argv[1:2] == ["compile"]:
        sys.exit(compile_command(sys.argv[2:]))
    else:
        print("usage: python -m gateway.config schema | check FILE [--stage STAGE] | compile FILE", file=sys.stderr)
        sys.exit(2)
