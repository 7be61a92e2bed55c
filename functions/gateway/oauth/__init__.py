"""The authorization server, one module per RFC concern. Pure domain code: no boto3, no HTTP framework."""
