"""AWS adapters of the core's ports (boto3 is imported here and nowhere in the domain modules)."""
