"""Every action: success, invalid input, the service's refusals, and the service being down."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.camera import Image
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.face_watchlist.const import DOMAIN

from .fake_service import FakeService, error


async def call(hass: HomeAssistant, service: str, data: dict[str, Any], response: bool = True) -> Any:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=response)


@pytest.fixture
def photo(hass: HomeAssistant, tmp_path: Path) -> Path:
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    path = tmp_path / "jane.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0jane\xff\xd9")
    return path


async def test_enroll_from_file(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, photo: Path
) -> None:
    result = await call(
        hass,
        "enroll_person",
        {"display_name": " Jane Doe ", "list": "registry", "external_id": "R-7", "image_path": str(photo)},
    )
    assert result == {"person_id": 100, "created": True, "photo_id": 1, "quality": 0.9}
    assert (
        "create_person",
        {"display_name": "Jane Doe", "list": "registry", "external_id": "R-7"},
    ) in service.calls
    sent = next(c[1] for c in service.calls if c[0] == "photo")
    assert sent["bytes"] == photo.read_bytes()
    assert sent["type"] == "image/jpeg"
    # a second photo for the same person
    result = await call(
        hass,
        "enroll_person",
        {"person_id": 100, "image_path": str(photo), "config_entry_id": loaded.entry_id},
    )
    assert result["created"] is False
    assert result["photo_id"] == 2


async def test_enroll_refused_photo_removes_new_person(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, photo: Path
) -> None:
    photo.write_bytes(b"GIF89a not a face")
    with pytest.raises(ServiceValidationError) as err:
        await call(
            hass, "enroll_person", {"display_name": "Jane", "list": "registry", "image_path": str(photo)}
        )
    assert err.value.translation_key == "photo_refused"
    assert err.value.translation_placeholders["code"] == "no_face"
    assert service.people == {}  # no one enrolled without a usable photo
    assert ("delete_person", 100) in service.calls


async def test_enroll_from_event(hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService) -> None:
    result = await call(
        hass, "enroll_person", {"display_name": "Jane", "list": "registry", "event_id": "1718.1-x"}
    )
    assert result["photo_id"] == 1
    assert ("from_event", {"event_id": "1718.1-x"}) in service.calls
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "enroll_person", {"display_name": "Jo", "list": "registry", "event_id": "gone"})
    assert err.value.translation_key == "not_found"


async def test_enroll_from_camera(hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService) -> None:
    image = Image(content_type="image/jpeg", content=b"\xff\xd8camera\xff\xd9")
    with patch("homeassistant.components.camera.async_get_image", return_value=image) as get_image:
        result = await call(
            hass,
            "enroll_person",
            {"display_name": "Jane", "list": "registry", "camera_entity_id": "camera.front"},
        )
    get_image.assert_awaited_once()
    assert result["created"] is True
    sent = next(c[1] for c in service.calls if c[0] == "photo")
    assert sent["bytes"] == image.content
    with (
        patch(
            "homeassistant.components.camera.async_get_image", side_effect=HomeAssistantError("no picture")
        ),
        pytest.raises(HomeAssistantError) as err,
    ):
        await call(hass, "enroll_person", {"person_id": 100, "camera_entity_id": "camera.front"})
    assert err.value.translation_key == "camera_image_failed"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"display_name": "Jane", "list": "registry"}, "one_photo_source"),
        (
            {"display_name": "Jane", "list": "registry", "event_id": "e", "image_path": "/tmp/x.jpg"},
            "one_photo_source",
        ),
        ({"display_name": "Jane", "event_id": "e"}, "person_required"),
        ({"display_name": "Jane", "list": "registry", "image_path": "relative.jpg"}, "path_not_allowed"),
        ({"display_name": "Jane", "list": "registry", "image_path": "/etc/passwd.jpg"}, "path_not_allowed"),
        (
            {"display_name": "Jane", "list": "registry", "image_path": "ALLOWED/notes.txt"},
            "unsupported_image",
        ),
        (
            {"display_name": "Jane", "list": "registry", "image_path": "ALLOWED/missing.jpg"},
            "image_unreadable",
        ),
        ({"display_name": "Jane", "list": "registry", "image_path": "ALLOWED/big.png"}, "image_unreadable"),
        ({"display_name": "Jane", "list": "nolist", "event_id": "e"}, "not_found"),
    ],
)
async def test_enroll_invalid(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    service: FakeService,
    tmp_path: Path,
    data: dict[str, Any],
    key: str,
) -> None:
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + b"\0" * (20 * 1024 * 1024))
    if "image_path" in data:
        data = {**data, "image_path": data["image_path"].replace("ALLOWED", str(tmp_path))}
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "enroll_person", data)
    assert err.value.translation_key == key
    assert service.people == {}


async def test_enroll_schema_rejects_bad_types(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    with pytest.raises(Exception, match="camera"):  # vol.Invalid / probatio's equivalent
        await call(
            hass, "enroll_person", {"display_name": "J", "list": "l", "camera_entity_id": "light.kitchen"}
        )
    with pytest.raises(Exception, match="person_id"):
        await call(hass, "enroll_person", {"person_id": 0, "event_id": "e"})


async def test_confirm_and_reject(hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService) -> None:
    result = await call(hass, "confirm_match", {"decision_id": 42, "add_template": True})
    assert result == {
        "decision_id": 42,
        "review_state": "confirmed",
        "template": {"added": True, "photo_id": 3},
    }
    assert ("review", {"id": 42, "action": "confirm", "add_template": True}) in service.calls
    result = await call(hass, "reject_match", {"decision_id": 42})
    assert result == {"decision_id": 42, "review_state": "rejected"}
    assert ("review", {"id": 42, "action": "reject", "add_template": False}) in service.calls
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "confirm_match", {"decision_id": 41})
    assert err.value.translation_key == "not_found"
    service.fail["review"] = error(409, "already_reviewed", "decision 42 was already rejected")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "confirm_match", {"decision_id": 42})
    assert err.value.translation_key == "refused"
    assert "already rejected" in err.value.translation_placeholders["message"]


async def test_remove_person(hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService) -> None:
    service.people[5] = {"id": 5, "display_name": "X", "lists": ["registry"], "photos": 1}
    assert await call(hass, "remove_person", {"person_id": 5}, response=False) is None
    assert service.people == {}
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "remove_person", {"person_id": 5}, response=False)
    assert err.value.translation_key == "not_found"


async def test_import_uploads_files(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, tmp_path: Path
) -> None:
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    (tmp_path / "export.csv").write_bytes(b"id,name,photo\nR1,Jane Doe,jane.jpg\n")
    (tmp_path / "photos.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    result = await call(
        hass,
        "import_registry",
        {
            "list": "registry",
            "csv": str(tmp_path / "export.csv"),
            "photos": str(tmp_path / "photos.zip"),
            "replace": True,
        },
    )
    assert result["id"] == "0123456789abcdef"
    assert result["state"] == "running"
    sent = next(c[1] for c in service.calls if c[0] == "import")
    assert sent == {
        "list": "registry",
        "replace": "true",
        "csv": b"id,name,photo\nR1,Jane Doe,jane.jpg\n",
        "photos": b"PK\x05\x06" + b"\0" * 18,
    }
    service.calls.clear()
    await call(hass, "import_registry", {"list": "registry", "photos": str(tmp_path / "photos.zip")})
    assert set(service.calls[0][1]) == {"list", "replace", "photos"}
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "import_registry", {"list": "nolist", "csv": str(tmp_path / "export.csv")})
    assert err.value.translation_key == "not_found"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"list": "registry"}, "import_source_required"),
        ({"list": "registry", "csv": "/etc/passwd.csv"}, "path_not_allowed"),
        ({"list": "registry", "csv": "ALLOWED/export.txt"}, "wrong_file_type"),
        ({"list": "registry", "photos": "ALLOWED/photos.tar"}, "wrong_file_type"),
        ({"list": "registry", "csv": "ALLOWED/missing.csv"}, "image_unreadable"),
    ],
)
async def test_import_invalid(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    service: FakeService,
    tmp_path: Path,
    data: dict[str, Any],
    key: str,
) -> None:
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    data = {k: v.replace("ALLOWED", str(tmp_path)) for k, v in data.items()}
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "import_registry", data)
    assert err.value.translation_key == key
    assert not [c for c in service.calls if c[0] == "import"]


async def test_purge(hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService) -> None:
    assert await call(hass, "purge", {"dry_run": True}) == {
        "dry_run": True,
        "removed": {"decisions": 5, "evidence": 4},
    }
    assert ("purge", {"dry_run": True}) in service.calls
    assert (await call(hass, "purge", {}))["dry_run"] is False


async def test_service_down_or_failing(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService
) -> None:
    service.fail["purge"] = error(500, "internal", "database is locked")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "purge", {})
    assert err.value.translation_key == "service_error"
    assert not isinstance(err.value, ServiceValidationError)
    service.fail["purge"] = error(401, "unauthorized", "token changed")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "purge", {})
    assert err.value.translation_key == "invalid_auth"
    assert service.server is not None
    await service.server.close()
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "confirm_match", {"decision_id": 42})
    assert err.value.translation_key == "cannot_connect"


async def test_entry_selection(hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "purge", {"config_entry_id": "nope"})
    assert err.value.translation_key == "entry_not_loaded"
    other = MockConfigEntry(
        domain=DOMAIN, unique_id="other", data={"url": "http://127.0.0.1:1", "token": "t"}
    )
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "purge", {"config_entry_id": other.entry_id})
    assert err.value.translation_key == "entry_not_loaded"
    assert await call(hass, "purge", {"config_entry_id": loaded.entry_id})
    await hass.config_entries.async_unload(loaded.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "purge", {})
    assert err.value.translation_key == "entry_required"


async def test_descriptions_and_messages_render(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService
) -> None:
    from homeassistant.helpers.service import async_get_all_descriptions

    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    assert set(descriptions) == {
        "enroll_person",
        "confirm_match",
        "reject_match",
        "remove_person",
        "import_registry",
        "purge",
    }
    assert descriptions["confirm_match"]["fields"]["decision_id"]["required"] is True
    # the English texts are found and their placeholders filled in
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "confirm_match", {"decision_id": 41})
    assert str(err.value) == "Not found on the service (no_such_decision): no such decision"
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "enroll_person", {"display_name": "J", "list": "registry"})
    assert str(err.value).startswith("Give exactly one photo source")
    assert service.server is not None
    await service.server.close()
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "purge", {})
    assert str(err.value).startswith("Cannot reach the Face Watchlist service: ")
