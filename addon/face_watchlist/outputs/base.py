"""What an output (Home Assistant discovery, Frigate sub_label, HA Core events) plugs into.

Outputs never sit on the decision path: `notify` must return at once (queue the work), `run` is
the output's own task for slow calls with retries, and a failing output is logged and counted
while the others go on.
"""

from __future__ import annotations

from typing import Any, Protocol


class Bus(Protocol):
    """The service as an output sees it."""

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool: ...

    def status(self) -> dict[str, Any]: ...


class Output(Protocol):
    name: str
    topics: tuple[str, ...]  # extra MQTT topics the output wants to hear

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        """A decision or a review happened (the same dicts as the MQTT payloads)."""

    def message(self, topic: str, payload: bytes) -> None:
        """A message on one of `topics`."""

    async def connected(self, bus: Bus) -> None:
        """After every (re)connection to the broker."""

    async def run(self, bus: Bus) -> None:
        """The output's own loop, cancelled when the service stops."""
