"""Helpers of :mod:`infra.bench`: scripts that run in fresh interpreters (cold start, RSS) or apart from the servers
under test (the load client), so that what they measure is not shared with the benchmark's own process."""
