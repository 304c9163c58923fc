"""Actions: enrol, review, remove, import, purge. Each validates its input and raises a
translated error; the service's refusals come back as validation errors the user can act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TypeVar, cast

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .api import ApiError, CannotConnect, FaceWatchlistClient, FaceWatchlistError, InvalidAuth
from .compat import vol
from .const import DOMAIN

if TYPE_CHECKING:
    from . import FaceWatchlistConfigEntry

SERVICE_ENROLL: Final = "enroll_person"
SERVICE_CONFIRM: Final = "confirm_match"
SERVICE_REJECT: Final = "reject_match"
SERVICE_REMOVE: Final = "remove_person"
SERVICE_IMPORT: Final = "import_registry"
SERVICE_PURGE: Final = "purge"

ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_DISPLAY_NAME: Final = "display_name"
ATTR_LIST: Final = "list"
ATTR_EXTERNAL_ID: Final = "external_id"
ATTR_PERSON_ID: Final = "person_id"
ATTR_IMAGE_PATH: Final = "image_path"
ATTR_EVENT_ID: Final = "event_id"
ATTR_CAMERA: Final = "camera_entity_id"
ATTR_DECISION_ID: Final = "decision_id"
ATTR_ADD_TEMPLATE: Final = "add_template"
ATTR_CSV: Final = "csv"
ATTR_PHOTOS: Final = "photos"
ATTR_REPLACE: Final = "replace"
ATTR_DRY_RUN: Final = "dry_run"

IMAGE_TYPES: Final = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
PHOTO_SOURCES: Final = (ATTR_IMAGE_PATH, ATTR_EVENT_ID, ATTR_CAMERA)

_ENTRY: dict[Any, Any] = {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string}
_ID = vol.All(vol.Coerce(int), vol.Range(min=1))

ENROLL_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_PERSON_ID): _ID,
        vol.Optional(ATTR_DISPLAY_NAME): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=200)),
        vol.Optional(ATTR_LIST): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=100)),
        vol.Optional(ATTR_EXTERNAL_ID): vol.All(cv.string, vol.Strip, vol.Length(max=200)),
        vol.Optional(ATTR_IMAGE_PATH): cv.string,
        vol.Optional(ATTR_EVENT_ID): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=200)),
        vol.Optional(ATTR_CAMERA): cv.entity_domain("camera"),
    }
)
CONFIRM_SCHEMA = vol.Schema(
    {**_ENTRY, vol.Required(ATTR_DECISION_ID): _ID, vol.Optional(ATTR_ADD_TEMPLATE): bool}
)
REJECT_SCHEMA = vol.Schema({**_ENTRY, vol.Required(ATTR_DECISION_ID): _ID})
REMOVE_SCHEMA = vol.Schema({**_ENTRY, vol.Required(ATTR_PERSON_ID): _ID})
IMPORT_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_LIST): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=100)),
        vol.Optional(ATTR_CSV): cv.string,
        vol.Optional(ATTR_PHOTOS): cv.string,
        vol.Optional(ATTR_REPLACE, default=False): bool,
    }
)
PURGE_SCHEMA = vol.Schema({**_ENTRY, vol.Optional(ATTR_DRY_RUN, default=False): bool})


def _client(hass: HomeAssistant, call: ServiceCall) -> FaceWatchlistClient:
    """The client of the entry the call names, or of the only loaded one."""
    entry_id = call.data.get(ATTR_CONFIG_ENTRY_ID)
    if entry_id is None:
        loaded = hass.config_entries.async_loaded_entries(DOMAIN)
        if len(loaded) != 1:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="entry_required")
        entry: FaceWatchlistConfigEntry = loaded[0]
    else:
        found = hass.config_entries.async_get_entry(entry_id)
        if found is None or found.domain != DOMAIN or found.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry_id": entry_id},
            )
        entry = found
    return entry.runtime_data.client


def _translate(err: FaceWatchlistError) -> HomeAssistantError:
    """The user-facing error for a failed call to the service."""
    if isinstance(err, CannotConnect):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        )
    if isinstance(err, InvalidAuth):
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_auth")
    if isinstance(err, ApiError) and err.status < 500:
        key = "photo_refused" if err.status == 422 else "not_found" if err.status == 404 else "refused"
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={
                "code": getattr(err, "code", ""),
                "message": getattr(err, "message", ""),
            },
        )
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="service_error",
        translation_placeholders={"error": str(err)},
    )


_T = TypeVar("_T")


async def _call(action: Awaitable[_T]) -> _T:
    try:
        return await action
    except FaceWatchlistError as err:
        raise _translate(err) from err


def _read_image(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError("too large")
    return data


async def _load_image_file(hass: HomeAssistant, raw: str) -> tuple[bytes, str, str]:
    path = Path(raw)
    placeholders = {"path": raw}
    if not path.is_absolute() or not hass.config.is_allowed_path(raw):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="path_not_allowed",
            translation_placeholders=placeholders,
        )
    content_type = IMAGE_TYPES.get(path.suffix.lower())
    if content_type is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unsupported_image",
            translation_placeholders=placeholders,
        )
    try:
        data = await hass.async_add_executor_job(_read_image, path)
    except (OSError, ValueError) as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="image_unreadable",
            translation_placeholders={"path": raw, "error": str(err)},
        ) from err
    return data, path.name, content_type


async def _add_photo(
    hass: HomeAssistant, client: FaceWatchlistClient, person_id: int, call: ServiceCall
) -> dict[str, Any]:
    if ATTR_EVENT_ID in call.data:
        return await client.add_photo_from_event(person_id, call.data[ATTR_EVENT_ID])
    if ATTR_CAMERA in call.data:
        from homeassistant.components.camera import async_get_image  # only loaded when used

        camera = call.data[ATTR_CAMERA]
        try:
            image = await async_get_image(hass, camera)
        except HomeAssistantError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="camera_image_failed",
                translation_placeholders={"entity_id": camera, "error": str(err)},
            ) from err
        return await client.add_photo(person_id, image.content, "camera.jpg", image.content_type)
    data, name, content_type = await _load_image_file(hass, call.data[ATTR_IMAGE_PATH])
    return await client.add_photo(person_id, data, name, content_type)


async def _enroll(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    sources = [key for key in PHOTO_SOURCES if key in call.data]
    if len(sources) != 1:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="one_photo_source")
    person_id: int | None = call.data.get(ATTR_PERSON_ID)
    if person_id is None and not (call.data.get(ATTR_DISPLAY_NAME) and call.data.get(ATTR_LIST)):
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="person_required")
    client = _client(hass, call)
    if ATTR_IMAGE_PATH in call.data:  # check the file before creating anyone
        await _load_image_file(hass, call.data[ATTR_IMAGE_PATH])
    created = False
    if person_id is None:
        person = await _call(
            client.create_person(
                call.data[ATTR_DISPLAY_NAME], call.data[ATTR_LIST], call.data.get(ATTR_EXTERNAL_ID)
            )
        )
        person_id, created = int(person["id"]), True
    try:
        photo = await _call(_add_photo(hass, client, person_id, call))
    except HomeAssistantError:
        if created:  # no one enrolled without a usable photo
            await _call(client.delete_person(person_id))
        raise
    return {
        "person_id": person_id,
        "created": created,
        "photo_id": photo.get("photo_id"),
        "quality": photo.get("quality"),
    }


async def _confirm(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    client = _client(hass, call)
    decision = await _call(
        client.review(call.data[ATTR_DECISION_ID], "confirm", call.data.get(ATTR_ADD_TEMPLATE, False))
    )
    answer: dict[str, Any] = {
        "decision_id": call.data[ATTR_DECISION_ID],
        "review_state": decision.get("review_state"),
    }
    if "template" in decision:  # add_template: whether the face could be enrolled, and why not
        answer["template"] = decision["template"]
    return cast(ServiceResponse, answer)


async def _reject(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    client = _client(hass, call)
    decision = await _call(client.review(call.data[ATTR_DECISION_ID], "reject"))
    return {"decision_id": call.data[ATTR_DECISION_ID], "review_state": decision.get("review_state")}


async def _remove(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    await _call(_client(hass, call).delete_person(call.data[ATTR_PERSON_ID]))
    return None


def _open_files(paths: list[Path | None]) -> list[BinaryIO | None]:
    handles: list[BinaryIO | None] = []
    try:
        for path in paths:
            handles.append(path.open("rb") if path is not None else None)
    except OSError:
        _close_files(handles)
        raise
    return handles


def _close_files(handles: list[BinaryIO | None]) -> None:
    for handle in handles:
        if handle is not None:
            handle.close()


def _import_path(hass: HomeAssistant, raw: str | None, suffix: str) -> Path | None:
    """A registry file the action may upload: absolute, in an allowed folder, the right type."""
    if raw is None:
        return None
    path = Path(raw)
    if not path.is_absolute() or not hass.config.is_allowed_path(raw):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="path_not_allowed",
            translation_placeholders={"path": raw},
        )
    if path.suffix.lower() != suffix:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="wrong_file_type",
            translation_placeholders={"path": raw, "suffix": suffix},
        )
    return path


async def _import(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    csv = _import_path(hass, call.data.get(ATTR_CSV), ".csv")
    photos = _import_path(hass, call.data.get(ATTR_PHOTOS), ".zip")
    if csv is None and photos is None:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="import_source_required")
    client = _client(hass, call)
    try:
        csv_file, photos_file = await hass.async_add_executor_job(_open_files, [csv, photos])
    except OSError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="image_unreadable",
            translation_placeholders={"path": str(err.filename), "error": err.strerror or str(err)},
        ) from err
    try:
        job = await _call(
            client.start_import(call.data[ATTR_LIST], csv_file, photos_file, call.data[ATTR_REPLACE])
        )
    finally:
        await hass.async_add_executor_job(_close_files, [csv_file, photos_file])
    return cast(ServiceResponse, job)


async def _purge(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    counts = await _call(_client(hass, call).purge(call.data[ATTR_DRY_RUN]))
    return cast(ServiceResponse, counts)


Handler = Callable[[HomeAssistant, ServiceCall], Awaitable[ServiceResponse]]
SERVICES: Final[dict[str, tuple[Handler, vol.Schema, SupportsResponse]]] = {
    SERVICE_ENROLL: (_enroll, ENROLL_SCHEMA, SupportsResponse.OPTIONAL),
    SERVICE_CONFIRM: (_confirm, CONFIRM_SCHEMA, SupportsResponse.OPTIONAL),
    SERVICE_REJECT: (_reject, REJECT_SCHEMA, SupportsResponse.OPTIONAL),
    SERVICE_REMOVE: (_remove, REMOVE_SCHEMA, SupportsResponse.NONE),
    SERVICE_IMPORT: (_import, IMPORT_SCHEMA, SupportsResponse.OPTIONAL),
    SERVICE_PURGE: (_purge, PURGE_SCHEMA, SupportsResponse.OPTIONAL),
}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action (once, in async_setup)."""
    for name, (handler, schema, supports_response) in SERVICES.items():

        async def _handle(call: ServiceCall, handler: Handler = handler) -> ServiceResponse:
            return await handler(hass, call)

        hass.services.async_register(
            DOMAIN, name, _handle, schema=schema, supports_response=supports_response
        )
