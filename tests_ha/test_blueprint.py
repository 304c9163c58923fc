"""The notification blueprint, run by HA's own automation engine against the integration."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
    async_mock_service,
)

from .fake_service import FakeService, decision, payload


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


BLUEPRINT = Path(__file__).resolve().parent.parent / "blueprints" / "automation" / "face_watchlist"


@pytest.fixture
async def automation(hass: HomeAssistant, loaded: MockConfigEntry, tmp_path: Path) -> list:
    hass.config.config_dir = str(tmp_path)
    shutil.copytree(BLUEPRINT, tmp_path / "blueprints" / "automation" / "face_watchlist")
    calls = async_mock_service(hass, "notify", "office_phone")
    config = {
        "automation": {
            "alias": "Watchlist notification",
            "use_blueprint": {
                "path": "face_watchlist/notify_on_match.yaml",
                "input": {"notify_action": "notify.office_phone", "lists": ["registry"]},
            },
        }
    }
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()
    assert hass.states.get("automation.watchlist_notification").state == "on"
    return calls


async def test_pending_match_notifies_and_confirm_button_reviews(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, automation: list
) -> None:
    async_fire_mqtt_message(hass, "face_watchlist/events", payload(decision()))
    # the run now waits for a button: block_till_done would wait for it, so let the loop turn a bit
    await until(lambda: len(automation) == 1)
    data = automation[0].data
    assert data["title"] == "Review needed: front_door"
    assert "Jane Doe (registry) at front_door, score 0.61" in data["message"]
    face = f"/api/face_watchlist/{loaded.entry_id}/decisions/42/face.jpg"
    assert data["data"]["image"] == face
    assert data["data"]["url"].endswith("/decisions/42/snapshot.jpg")
    assert [a["action"] for a in data["data"]["actions"]] == ["FW_CONFIRM_42", "FW_REJECT_42", "URI"]

    hass.bus.async_fire("mobile_app_notification_action", {"action": "FW_CONFIRM_42"})
    await until(lambda: any(c[0] == "review" for c in service.calls))
    assert ("review", {"id": 42, "action": "confirm", "add_template": False}) in service.calls


async def test_filters_on_list_and_state(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, automation: list
) -> None:
    async_fire_mqtt_message(hass, "face_watchlist/events", payload(decision(list="staff", decision_id=50)))
    async_fire_mqtt_message(hass, "face_watchlist/events", payload(decision(result="unknown", event_id="u")))
    await hass.async_block_till_done()
    assert automation == []
    async_fire_mqtt_message(
        hass, "face_watchlist/events", payload(decision(review_state="alert", decision_id=51, event_id="a"))
    )
    await hass.async_block_till_done()
    assert len(automation) == 1
    assert automation[0].data["title"] == "Watchlist alert: front_door"
    assert [a["action"] for a in automation[0].data["data"]["actions"]] == ["URI"]
