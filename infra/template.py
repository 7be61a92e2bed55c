"""Read ``template.yaml`` the way the local tools need it: functions, their HTTP routes, their environment.

The SAM template is the single source of truth for what runs where. The dev server serves each function's
``HttpApi`` events, ``make invoke`` builds a function's environment, and the local AWS stand-in creates the tables,
keys and secrets, all from the parsed template, so a route or a resource added there exists locally with no other
change.

:func:`resolve` evaluates only the intrinsic functions this template uses (``Ref``, ``Fn::Sub``, ``Fn::GetAtt``,
``Fn::If`` and the condition functions, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``), with the pseudo parameters of a
fixed local stack (:data:`PSEUDO_PARAMETERS`). It is not a CloudFormation engine: anything else raises
:class:`TemplateError`, naming what it could not evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LOCAL_STACK_NAME = "mcp-gateway-local"
LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"

PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": LOCAL_ACCOUNT_ID,
    "AWS::StackName": LOCAL_STACK_NAME,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Partition": "aws",
}

# CloudFormation's short-form tags (`!Ref X`, `!Sub ...`), each mapped to its long form.
_SHORT_TAGS: dict[str, str] = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "Transform",
            "ToJsonString",
            "Length",
        )
    },
}

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template uses something these tools cannot read or evaluate."""


class _NoValue:
    """What ``Ref: AWS::NoValue`` evaluates to: the enclosing key or list item is dropped."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


class _TemplateLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form tags."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    long_name = _SHORT_TAGS.get(tag_suffix)
    if long_name is None:
        raise TemplateError(f"unknown CloudFormation tag !{tag_suffix} at {node.start_mark}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        # `!GetAtt Resource.Attribute` is the short form of ["Resource", "Attribute"].
        if long_name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {long_name: value}


_TemplateLoader.add_multi_constructor("!", _construct_tag)
# CloudFormation treats dates such as AWSTemplateFormatVersion as strings.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(path: str | Path = "template.yaml") -> dict[str, Any]:
    """Parse a SAM/CloudFormation YAML template, turning short-form tags into their long forms."""
    with Path(path).open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return document


# --- functions and routes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRoute:
    method: str  # "GET", "ANY", ...
    path: str  # "/{workspace}/{server}/mcp"

    @property
    def route_key(self) -> str:
        """The HTTP API route key, e.g. ``ANY /{workspace}/{server}/mcp``."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str  # "metadata.app.handler"
    code_uri: str
    routes: tuple[HttpRoute, ...]
    environment: dict[str, Any]  # merged Globals + function; intrinsics unresolved
    timeout: int
    memory_size: int
    streams: bool = False
    """Answers through Lambda response streaming behind the Lambda Web Adapter (``AWS_LWA_INVOKE_MODE``)."""
    asgi_app: str | None = None
    """``Metadata.AsgiApp``: the ASGI app the adapter serves (``module.attribute``), for a streaming function."""


# SAM's defaults when neither the function nor Globals set them.
_SAM_DEFAULT_TIMEOUT = 3
_SAM_DEFAULT_MEMORY = 128


def _function_properties(template: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """A function's properties with ``Globals.Function`` applied (maps merge, the function's values win)."""
    merged: dict[str, Any] = dict(template.get("Globals", {}).get("Function", {}))
    for key, value in properties.items():
        if key == "Environment":
            variables = {
                **merged.get("Environment", {}).get("Variables", {}),
                **value.get("Variables", {}),
            }
            merged["Environment"] = {"Variables": variables}
        else:
            merged[key] = value
    return merged


def functions(template: dict[str, Any], parameters: Mapping[str, str] | None = None) -> list[FunctionSpec]:
    """Every ``AWS::Serverless::Function`` of the template, in template order, as deployed with ``parameters``
    (the defaults when None): a ``Handler`` or ``Timeout`` chosen by a condition is resolved."""
    values = parameter_values(template, parameters)
    conditions = template.get("Conditions", {})

    def resolved(node: Any) -> Any:
        return resolve(node, refs={}, parameters=values, conditions=conditions)

    specs = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = _function_properties(template, resource.get("Properties", {}))
        routes = tuple(
            HttpRoute(method=str(event["Properties"].get("Method", "ANY")).upper(), path=event["Properties"]["Path"])
            for event in props.get("Events", {}).values()
            if event.get("Type") == "HttpApi" and "Path" in event.get("Properties", {})
        )
        code_uri = props.get("CodeUri")
        handler = resolved(props.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            raise TemplateError(f"{logical_id}: CodeUri and Handler must be strings")
        environment = dict(props.get("Environment", {}).get("Variables", {}))
        invoke_mode = resolved({"mode": environment.get("AWS_LWA_INVOKE_MODE", {"Ref": "AWS::NoValue"})})
        asgi_app = resource.get("Metadata", {}).get("AsgiApp")
        streams = invoke_mode.get("mode") == "response_stream"
        if streams and not isinstance(asgi_app, str):
            raise TemplateError(f"{logical_id}: a streaming function names its ASGI app in Metadata.AsgiApp")
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                handler=handler,
                code_uri=code_uri,
                routes=routes,
                environment=environment,
                timeout=int(resolved(props.get("Timeout", _SAM_DEFAULT_TIMEOUT))),
                memory_size=int(props.get("MemorySize", _SAM_DEFAULT_MEMORY)),
                streams=streams,
                asgi_app=asgi_app if isinstance(asgi_app, str) else None,
            )
        )
    return specs


# --- intrinsic functions -------------------------------------------------------------------------------------


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's parameter defaults (as strings, as CloudFormation passes them) updated with ``overrides``.

    ``AllowedValues`` and patterns are not enforced, so local tools may pass values a deployment refuses, such as
    ``Stage=local``; an unknown parameter name is an error (it is most likely a typo).
    """
    values = {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if isinstance(spec, Mapping) and "Default" in spec
    }
    if overrides:
        unknown = set(overrides) - set(template.get("Parameters", {}))
        if unknown:
            raise TemplateError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        values.update(overrides)
    return values


class _Resolver:
    def __init__(
        self,
        refs: Mapping[str, str],
        attributes: Mapping[tuple[str, str], str],
        parameters: Mapping[str, str],
        conditions: Mapping[str, Any],
    ) -> None:
        self.refs = refs
        self.attributes = attributes
        self.parameters = parameters
        self.conditions = conditions
        self._evaluating: set[str] = set()

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.value(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self.intrinsic(key, argument)
        members = {key: self.value(item) for key, item in node.items()}
        return {key: item for key, item in members.items() if item is not NO_VALUE}

    def intrinsic(self, name: str, argument: Any) -> Any:
        if name == "Ref":
            return self.ref(argument)
        if name == "Condition":
            return self.condition(argument)
        if name == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
            return self.attribute(str(logical_id), str(self.value(attribute)))
        if name == "Fn::Sub":
            return self.sub(argument)
        if name == "Fn::If":
            condition, if_true, if_false = argument
            return self.value(if_true if self.condition(condition) else if_false)
        if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self.boolean(name, argument)
        if name == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(str(item) for item in self.value(items))
        if name == "Fn::Select":
            index, items = self.value(argument)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, text = argument
            return str(self.value(text)).split(str(delimiter))
        raise TemplateError(f"cannot evaluate {name} locally")

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for source in (self.parameters, PSEUDO_PARAMETERS, self.refs):
            if name in source:
                return source[name]
        raise TemplateError(f"no value for Ref {name!r} (not a parameter, pseudo parameter or provisioned resource)")

    def attribute(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise TemplateError(f"no value for Fn::GetAtt {logical_id}.{attribute}") from None

    def sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {key: self.value(item) for key, item in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):  # `${!Literal}` is the escape for a literal `${Literal}`
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return self.attribute(logical_id, attribute)
            return str(self.ref(expression))

        return _SUB_VARIABLE.sub(replace, str(text))

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise TemplateError(f"unknown condition {name!r}")
        if name in self._evaluating:
            raise TemplateError(f"condition {name!r} refers to itself")
        self._evaluating.add(name)
        try:
            return bool(self.value(self.conditions[name]))
        finally:
            self._evaluating.discard(name)

    def boolean(self, name: str, argument: Any) -> bool:
        if name == "Fn::Equals":
            left, right = (self.value(item) for item in argument)
            return str(left) == str(right)
        values = [bool(self.value(item)) for item in argument]
        if name == "Fn::Not":
            return not values[0]
        return all(values) if name == "Fn::And" else any(values)


def resolve(
    value: Any,
    *,
    refs: dict[str, str],
    attributes: dict[tuple[str, str], str] | None = None,
    parameters: dict[str, str],
    conditions: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate the intrinsic functions in ``value``.

    ``refs`` maps logical ids to what ``Ref`` gives (e.g. from :func:`infra.local_aws.provision`), ``attributes``
    maps ``(logical id, attribute)`` to what ``Fn::GetAtt`` gives, ``parameters`` are the stack's parameter values
    (see :func:`parameter_values`) and ``conditions`` the template's ``Conditions`` section, needed by ``Fn::If``.
    ``Ref: AWS::NoValue`` removes the enclosing key or list item.
    """
    resolver = _Resolver(refs, attributes or {}, parameters, conditions or {})
    return resolver.value(value)


def resolve_environment(
    template: dict[str, Any], fn: FunctionSpec, *, refs: dict[str, str], parameters: dict[str, str]
) -> dict[str, str]:
    """The function's environment variables as Lambda would see them, for the given resources and parameters.

    ``parameters`` override the template's defaults; numbers become strings as in Lambda.
    """
    resolved = resolve(
        fn.environment,
        refs=refs,
        parameters=parameter_values(template, parameters),
        conditions=template.get("Conditions", {}),
    )
    return {name: _as_env_string(value) for name, value in resolved.items()}


def _as_env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
