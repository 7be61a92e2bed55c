"""Storage ports (``ports``) and the records they hold (``records``); the in-memory adapters are test doubles in
``infra/memory``.

The DynamoDB adapters live in ``gateway.aws`` (dynamodb_store, dynamodb_grants, dynamodb_audit); docs/storage.md
describes every item.
"""
