"""In-memory stand-ins of the gateway's AWS adapters, for tests and local benchmarks (never part of a function's
artifact): storage (:mod:`infra.memory.stores`, the same port contracts as the DynamoDB adapters), a local RSA signing
key (:mod:`infra.memory.keys`) and a local token cipher (:mod:`infra.memory.cipher`), with counters tests read."""
