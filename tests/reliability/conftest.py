"""Fixtures of the reliability suite: ``storm`` (the storm hub, tests/reliability/stormhub.py)."""

from stormhub import storm  # noqa: F401
