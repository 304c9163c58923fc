"""The service's HTTP API and web UI (aiohttp)."""
