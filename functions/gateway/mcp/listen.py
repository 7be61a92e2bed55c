"""MCP 2026-07-28 ``subscriptions/listen`` where no stream can be held open.

A client opens a long-lived notification stream by POSTing ``subscriptions/listen`` (§Basic "Subscriptions"; it
replaces the session era's GET stream). The buffered deployment cannot hold a response open (API Gateway's HTTP API
and Mangum deliver a response whole, and a virtual route merges answers), so a relayed listen would only end at the
route's timeout, after the client waited that long for nothing. The gateway answers it at once instead, in the
revision's own terms:

- ``notifications/subscriptions/acknowledged`` first (the server MUST acknowledge before anything else), with the
  subset of the filter the server agreed to honour: none, as nothing can be delivered later on this response;
- then the graceful closure (§"Graceful Closure"): the result of the listen request, ``resultType: "complete"``,
  carrying the subscription id, which tells the client the subscription ended cleanly rather than dropped.

The streaming deployment relays the listen to the upstream like any other stream.
"""

from __future__ import annotations

from gateway.mcp.jsonrpc import Message, RequestId

LISTEN = "subscriptions/listen"
ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
SUBSCRIPTION_ID_META = "io.modelcontextprotocol/subscriptionId"


def closed_at_once(request_id: RequestId) -> tuple[Message, Message]:
    """The acknowledgement (honouring no notification type) and the graceful closure of the listen ``request_id``."""
    meta = {SUBSCRIPTION_ID_META: request_id}
    acknowledged = {"jsonrpc": "2.0", "method": ACKNOWLEDGED, "params": {"_meta": meta, "notifications": {}}}
    closed = {"jsonrpc": "2.0", "id": request_id, "result": {"resultType": "complete", "_meta": meta}}
    return acknowledged, closed
