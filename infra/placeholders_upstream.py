"""Fillers of the upstream-connect sample events' placeholders, registered with :mod:`infra.placeholders`.

- ``{{CONNECT_LINK_TOKEN}}``: the ``for`` parameter of a connect link (:mod:`gateway.upstream.connect_links`) made
  for the dev user on the event's route, as a ``-32042`` error would carry it — signed with the deployment's shared
  secret, valid for the usual week.

Importing this module registers the fillers (``infra.placeholders`` imports it through ``FILLER_MODULES``).
"""

from __future__ import annotations

from gateway.upstream.connect_links import link_token
from infra.placeholders import LOCAL_SUBJECT, PlaceholderContext, placeholder


@placeholder("CONNECT_LINK_TOKEN")
def _connect_link_token(context: PlaceholderContext) -> str:
    runtime = context.runtime
    return link_token(context.route(), LOCAL_SUBJECT, runtime.shared_secret, runtime.now())
