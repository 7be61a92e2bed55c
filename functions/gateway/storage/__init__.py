"""Storage ports (``ports``), the records they hold (``records``) and the in-memory adapter (``memory``).

The DynamoDB adapter lives in ``gateway.aws.dynamodb_store``; docs/storage.md describes every item.
"""
