"""Differences between the Home Assistant releases this integration supports (2025.4 onwards)."""

from __future__ import annotations

try:  # Home Assistant 2026 validates with probatio, a voluptuous-compatible successor
    import probatio as vol
except ImportError:  # pragma: no cover - only on older releases (the oldest-HA test run covers it)
    import voluptuous as vol  # type: ignore[no-redef]

__all__ = ["vol"]
