"""Fixtures of the virtual-route tests."""

from tests.unit.virtual.virtual_gateway import upstreams

__all__ = ["upstreams"]
