"""The local AWS stand-in: moto's server mode on 127.0.0.1, provisioned from ``template.yaml``.

:func:`start_local_aws` runs moto (DynamoDB, KMS, Secrets Manager, SSM, ...) over real HTTP in a process of its own
(:mod:`infra.local_aws_server`: as on AWS, the store is elsewhere; one request at a time so that conditional writes
are atomic as in AWS; connections kept open, as an SDK client keeps them to the regional endpoint);
:func:`provision` creates the template's tables, keys, aliases, secrets and SSM parameters there through boto3, reading
their properties from the template, and returns what ``Ref`` gives for each, as CloudFormation would. The functions
then run unchanged with :func:`local_environment` pointing the AWS SDK at the stand-in.

Each stand-in has its own state, kept in a file across restarts when asked (``make dev``). :func:`provision` is
idempotent (it reuses a table, key alias or secret that already exists under the same name, so a restored state
keeps its keys and secret), and :meth:`LocalAws.reset` empties the state when a clean slate is wanted.

``python -m infra.local_aws --port 4566`` starts one, provisions it and prints the refs as JSON (for debugging).
"""

from __future__ import annotations

import argparse
import json
import secrets
import string
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.asgi_thread import listening_socket
from infra.child_process import ChildServer, StopRequests
from infra.template import (
    LOCAL_REGION,
    LOCAL_STACK_NAME,
    TemplateError,
    load_template,
    parameter_values,
    resolve,
)

LOCAL_ACCESS_KEY = "testing"
LOCAL_HOST = "127.0.0.1"


class LocalAws:
    """A running local AWS stand-in (its own process). Use as a context manager, or call :meth:`stop`."""

    def __init__(self, server: ChildServer) -> None:
        self._server = server
        self.port = server.port
        self.endpoint_url = f"http://{LOCAL_HOST}:{server.port}"

    def wait_ready(self) -> None:
        self._server.wait_ready()

    @property
    def pid(self) -> int:
        return self._server.process.pid

    def stop(self) -> None:
        """Stop the stand-in (it saves its state first, when it keeps one). Idempotent."""
        self._server.stop()

    def calls(self) -> dict[str, int]:
        """The calls the stand-in served so far, by operation (``DynamoDB_20120810.GetItem``, ``TrentService.Sign``)."""
        return store_calls(self.endpoint_url)

    def reset(self) -> None:
        """Forget every resource the stand-in holds (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own loopback server
            pass

    def __enter__(self) -> LocalAws:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def store_calls(endpoint_url: str) -> dict[str, int]:
    """The calls the stand-in at ``endpoint_url`` served so far, by operation (see :mod:`infra.local_aws_server`)."""
    from infra.local_aws_server import CALLS_PATH

    with urllib.request.urlopen(f"{endpoint_url}{CALLS_PATH}", timeout=10) as response:  # noqa: S310 - loopback
        counts: dict[str, int] = json.loads(response.read())
    return counts


def start_local_aws(port: int = 0, *, state: Path | None = None, wait: bool = True) -> LocalAws:
    """Start moto in a process of its own on 127.0.0.1 (``port=0`` picks a free port), serving over keep-alive
    connections (:mod:`infra.local_aws_server`). ``state``: a file to restore the state from and keep it in
    across restarts. Changes no environment variable. Raises ``OSError`` when the port is taken. ``wait=False``:
    return at once; call :meth:`LocalAws.wait_ready` before using it."""
    sock = listening_socket(port)
    args = ["--state", str(state)] if state is not None else []
    return LocalAws(ChildServer("local AWS stand-in", "infra.local_aws_server", sock, args, wait=wait))


def local_environment(endpoint_url: str) -> dict[str, str]:
    """The environment that points the AWS SDK (boto3 reads these itself) at the stand-in, with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_ACCESS_KEY,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_ACCESS_KEY,
    )


def _add_missing_indexes(dynamodb: Any, name: str, props: Mapping[str, Any], description: Mapping[str, Any]) -> None:
    """A table kept from an earlier run of the local stack (``.dev/``) gets the indexes the template added since."""
    existing = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
    for index in props.get("GlobalSecondaryIndexes", []):
        if index["IndexName"] not in existing:
            dynamodb.update_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                GlobalSecondaryIndexUpdates=[{"Create": index}],
            )


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class _Provisioner:
    """Creates one template's resources; ``refs`` and ``attributes`` grow as resources are created."""

    def __init__(self, endpoint_url: str, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.endpoint_url = endpoint_url
        self.template = template
        self.parameters = parameters
        self.refs: dict[str, str] = {}
        self.attributes: dict[tuple[str, str], str] = {}

    def value(self, node: Any) -> Any:
        return resolve(
            node,
            refs=self.refs,
            attributes=self.attributes,
            parameters=self.parameters,
            conditions=self.template.get("Conditions", {}),
        )

    def resources(self, resource_type: str) -> list[tuple[str, dict[str, Any]]]:
        """The template's resources of one type whose ``Condition`` (if any) holds, with resolved properties."""
        selected = []
        for logical_id, resource in self.template["Resources"].items():
            if resource.get("Type") != resource_type:
                continue
            condition = resource.get("Condition")
            if condition is not None and not self.value({"Condition": condition}):
                continue
            selected.append((logical_id, self.value(resource.get("Properties", {}))))
        return selected

    def default_name(self, logical_id: str) -> str:
        # CloudFormation appends a random suffix; a stable name keeps reruns idempotent.
        return f"{LOCAL_STACK_NAME}-{logical_id}"

    # --- DynamoDB ---------------------------------------------------------------------------------------------

    def table(self, logical_id: str, props: Mapping[str, Any]) -> None:
        dynamodb = _client("dynamodb", self.endpoint_url)
        name = str(props.get("TableName") or self.default_name(logical_id))
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
            if key in props:
                request[key] = props[key]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "DeletionProtectionEnabled" in props:
            request["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
        try:
            description = dynamodb.create_table(**request)["TableDescription"]
        except ClientError as error:
            if _error_code(error) != "ResourceInUseException":
                raise
            description = dynamodb.describe_table(TableName=name)["Table"]
            _add_missing_indexes(dynamodb, name, props, description)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        self.refs[logical_id] = name
        self.attributes[(logical_id, "Arn")] = description["TableArn"]
        if "LatestStreamArn" in description:
            self.attributes[(logical_id, "StreamArn")] = description["LatestStreamArn"]

    # --- KMS --------------------------------------------------------------------------------------------------

    def key(self, logical_id: str, props: Mapping[str, Any], aliases: Mapping[str, str]) -> None:
        kms = _client("kms", self.endpoint_url)
        metadata = None
        alias = aliases.get(logical_id)
        if alias is not None:  # reuse the key behind the alias when an earlier run created it
            try:
                metadata = kms.describe_key(KeyId=alias)["KeyMetadata"]
            except ClientError as error:
                if _error_code(error) != "NotFoundException":
                    raise
        if metadata is None:
            request = {
                "KeySpec": props.get("KeySpec", "SYMMETRIC_DEFAULT"),
                "KeyUsage": props.get("KeyUsage", "ENCRYPT_DECRYPT"),
                "Description": str(props.get("Description", logical_id)),
            }
            metadata = kms.create_key(**request)["KeyMetadata"]
            if props.get("EnableKeyRotation"):
                kms.enable_key_rotation(KeyId=metadata["KeyId"])
        self.refs[logical_id] = metadata["KeyId"]
        self.attributes[(logical_id, "KeyId")] = metadata["KeyId"]
        self.attributes[(logical_id, "Arn")] = metadata["Arn"]

    def alias(self, logical_id: str, props: Mapping[str, Any]) -> None:
        kms = _client("kms", self.endpoint_url)
        name, target = str(props["AliasName"]), str(props["TargetKeyId"])
        try:
            kms.create_alias(AliasName=name, TargetKeyId=target)
        except ClientError as error:
            if _error_code(error) != "AlreadyExistsException":
                raise
            kms.update_alias(AliasName=name, TargetKeyId=target)
        self.refs[logical_id] = name

    def key_aliases(self) -> dict[str, str]:
        """Key logical id -> the alias name the template gives it (the first one, if several)."""
        aliases: dict[str, str] = {}
        for _, resource in self.template["Resources"].items():
            if resource.get("Type") != "AWS::KMS::Alias":
                continue
            props = resource.get("Properties", {})
            target = props.get("TargetKeyId")
            if isinstance(target, dict) and "Ref" in target:
                aliases.setdefault(str(target["Ref"]), str(self.value(props["AliasName"])))
        return aliases

    # --- Secrets Manager and SSM ------------------------------------------------------------------------------

    def secret(self, logical_id: str, props: Mapping[str, Any]) -> None:
        client = _client("secretsmanager", self.endpoint_url)
        name = str(props.get("Name") or self.default_name(logical_id))
        if "SecretString" in props:
            value = str(props["SecretString"])
        else:
            value = _generate_secret_string(props.get("GenerateSecretString", {}))
        request: dict[str, Any] = {"Name": name, "SecretString": value}
        if "Description" in props:
            request["Description"] = str(props["Description"])
        try:
            arn = client.create_secret(**request)["ARN"]
        except ClientError as error:
            if _error_code(error) != "ResourceExistsException":
                raise
            arn = client.describe_secret(SecretId=name)["ARN"]
        self.refs[logical_id] = arn
        self.attributes[(logical_id, "Id")] = arn

    def parameter(self, logical_id: str, props: Mapping[str, Any]) -> None:
        ssm = _client("ssm", self.endpoint_url)
        name = str(props.get("Name") or f"/{LOCAL_STACK_NAME}/{logical_id}")
        ssm.put_parameter(Name=name, Value=str(props["Value"]), Type=str(props.get("Type", "String")), Overwrite=True)
        self.refs[logical_id] = name
        self.attributes[(logical_id, "Value")] = str(props["Value"])

    def run(self) -> dict[str, str]:
        # Dependency order: keys before their aliases, plain values (tables, secrets) before anything reading them.
        aliases = self.key_aliases()
        steps: list[tuple[str, Callable[[str, dict[str, Any]], None]]] = [
            ("AWS::KMS::Key", lambda logical_id, props: self.key(logical_id, props, aliases)),
            ("AWS::KMS::Alias", self.alias),
            ("AWS::DynamoDB::Table", self.table),
            ("AWS::SecretsManager::Secret", self.secret),
            ("AWS::SSM::Parameter", self.parameter),
        ]
        for resource_type, create in steps:
            for logical_id, props in self.resources(resource_type):
                create(logical_id, props)
        return dict(self.refs)


def _generate_secret_string(spec: Mapping[str, Any]) -> str:
    """A random value following a ``GenerateSecretString`` specification (the options this project may use)."""
    alphabet = ""
    if not spec.get("ExcludeLowercase"):
        alphabet += string.ascii_lowercase
    if not spec.get("ExcludeUppercase"):
        alphabet += string.ascii_uppercase
    if not spec.get("ExcludeNumbers"):
        alphabet += string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += string.punctuation
    if spec.get("IncludeSpace"):
        alphabet += " "
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    alphabet = "".join(char for char in alphabet if char not in excluded)
    if not alphabet:
        raise TemplateError("GenerateSecretString excludes every character")
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec:
        document = json.loads(str(spec["SecretStringTemplate"]))
        document[str(spec["GenerateStringKey"])] = value
        return json.dumps(document)
    return value


def provision(
    endpoint_url: str, template: dict[str, Any], *, parameters: dict[str, str] | None = None
) -> dict[str, str]:
    """Create the template's tables, KMS keys and aliases, secrets and SSM parameters at ``endpoint_url``.

    Returns, per logical id, what ``Ref`` gives in CloudFormation: the table name, the key id, the alias name, the
    secret ARN, the parameter name. Names not set in the template are ``<local stack name>-<LogicalId>``.
    ``parameters`` override the template's defaults (for names and conditions). Idempotent within one moto process.
    """
    return _Provisioner(endpoint_url, template, parameter_values(template, parameters)).run()


def _parse_parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local_aws", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4566, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument(
        "--parameter", type=_parse_parameter, action="append", default=[], help="NAME=VALUE template parameter"
    )
    args = parser.parse_args(argv)
    template = load_template(args.template)
    with start_local_aws(args.port) as local:
        refs = provision(local.endpoint_url, template, parameters=dict(args.parameter))
        print(json.dumps({"environment": local_environment(local.endpoint_url), "refs": refs}, indent=2))
        print("local AWS stand-in running; Ctrl-C to stop", file=sys.stderr, flush=True)
        with StopRequests() as stop:
            stop.wait()
        print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
