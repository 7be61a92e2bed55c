"""``mcp-gateway admin``: look at and act on a gateway's state, locally or in an AWS account.

    mcp-gateway admin --local audit --workspace demo --since 1h
    mcp-gateway admin --stack mcp-gateway --region eu-west-1 grants --workspace acme --user alice
    mcp-gateway admin --local revoke-grant GRANT_ID
    mcp-gateway admin --local client CLIENT_ID --json
    mcp-gateway admin --local revoke-user --workspace demo alice
    mcp-gateway admin routes --config my-gateway.yaml
    mcp-gateway admin --local create-key --workspace demo --user alice --name ci --server echo --expires-in 90d

Where the tables are: ``--local`` reads the running ``make dev``'s ``.dev/state.json``; ``--stack NAME`` reads the
deployed stack's outputs (``--region``, ``--profile``); otherwise the ``GATEWAY_*_TABLE`` and ``AWS_*`` variables of
the environment, as the functions read them. Every revocation bites on the client's next call (the proxy reads the
grant's or key's status per request) and is itself written to the audit trail. Output is a table, or JSON with
``--json`` (anywhere on the line). Nothing here prints a secret, except the new key's value that ``create-key``
prints once, whole: it is stored only as a hash and cannot be shown again.

The parts: :mod:`gateway.admin.arguments` (the command line), :mod:`gateway.admin.where` (which tables),
:mod:`gateway.admin.command` (the entry point), :mod:`gateway.admin.output` (tables and JSON); what each command
does is :mod:`gateway.operations.service`, shared with the admin console.
"""

from gateway.admin.command import main

__all__ = ["main"]
