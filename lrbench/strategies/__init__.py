"""The strategy registry: every learning-rate strategy by name, with a one-line description."""
from __future__ import annotations

STRATEGIES: dict[str, str] = {}
