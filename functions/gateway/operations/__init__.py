"""What an operator sees of a gateway's state and does to it (``docs/operations.md``): look at audit events, grants,
clients, API keys and upstream connections; revoke a grant, a client or a key; disconnect an upstream account; end
all of a user's access. The admin CLI calls :class:`~gateway.operations.service.OperatorService`; the admin console
and its JSON API are meant to call the same service, so nothing is implemented twice."""
