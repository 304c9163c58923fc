"""JSON Schemas of the API's bodies: they validate requests and document responses."""

from __future__ import annotations

from face_watchlist.web.spec import Schema, ref

NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f]+$"}
SHORT: Schema = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f]+$"}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"], "minimum": -1, "maximum": 1}

WATCH_LIST: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["watch", "known"]},
        "policy": {"type": "string", "enum": ["review_first", "immediate"]},
        "threshold": {"type": "number", "nullable": True},
        "margin": {"type": "number", "nullable": True},
        "schedule": {"type": "string", "nullable": True},
        "people": {"type": "integer"},
    },
}

NEW_LIST: Schema = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": NAME,
        "kind": {"type": "string", "enum": ["watch", "known"]},
        "policy": {"type": "string", "enum": ["review_first", "immediate"]},
        "threshold": NULLABLE_NUMBER,
        "margin": NULLABLE_NUMBER,
        # immediate lists: when to alert at once, e.g. "mon-fri 07:00-17:00"; null: always
        "schedule": {"type": "string", "maxLength": 200, "nullable": True},
    },
}

LIST_CHANGES: Schema = {**NEW_LIST, "required": []}

PERSON: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "display_name": {"type": "string"},
        "external_id": {"type": "string", "nullable": True},
        "notes": {"type": "string"},
        "lists": {"type": "array", "items": {"type": "string"}},
        "photos": {"type": "integer", "description": "enrolment photos kept"},
        "templates": {"type": "integer", "description": "templates of the active model pack"},
    },
}

PHOTO: Schema = {
    "type": "object",
    "properties": {
        "photo_id": {"type": "integer"},
        "source": {"type": "string"},
        "added_at": {"type": "string"},
        "url": {"type": "string"},
        "face_url": {"type": "string"},
        "quality": ref("Quality"),
    },
}

PERSON_DETAIL: Schema = {
    "allOf": [
        ref("Person"),
        {"type": "object", "properties": {"enrolment": {"type": "array", "items": PHOTO}}},
    ]
}

QUALITY: Schema = {
    "type": "object",
    "properties": {k: {"type": "number"} for k in ("face_px", "sharpness", "frontalness", "det_score")},
}

NEW_PERSON: Schema = {
    "type": "object",
    "required": ["display_name", "list"],
    "additionalProperties": False,
    "properties": {
        "display_name": NAME,
        "list": NAME,
        "external_id": {"type": ["string", "null"], "maxLength": 200},
        "notes": {"type": "string", "maxLength": 2000},
    },
}

PERSON_CHANGES: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "display_name": NAME,
        "external_id": {"type": ["string", "null"], "maxLength": 200},
        "notes": {"type": "string", "maxLength": 2000},
        "lists": {"type": "array", "items": NAME, "minItems": 1, "maxItems": 100},
    },
}

ENROLLED: Schema = {
    "type": "object",
    "properties": {
        "photo_id": {"type": "integer"},
        "person_id": {"type": "integer"},
        "quality": ref("Quality"),
        "advice": {"type": "array", "items": {"type": "string"}},
    },
}

PHOTO_UPLOAD: Schema = {
    "type": "object",
    "required": ["photo"],
    "properties": {
        "photo": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP, at most 20 MB"},
        "face": {"type": "integer", "description": "which face when there are several (0 = largest)"},
    },
}

FROM_EVENT: Schema = {
    "type": "object",
    "required": ["event_id"],
    "additionalProperties": False,
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 100},
        "face": {"type": "integer"},
    },
}


def page(item: Schema) -> Schema:
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": item}, "total": {"type": "integer"}},
    }


DECISION: Schema = {
    "type": "object",
    "description": "a decision as stored (the MQTT decision fields, its id, review and evidence URLs)",
    "properties": {
        "id": {"type": "integer"},
        "event_id": {"type": "string"},
        "camera": {"type": "string"},
        "result": {"type": "string", "enum": ["match", "unknown", "no_face"]},
        "review_state": {"type": "string", "nullable": True},
        "evidence": {"type": "object", "nullable": True},
    },
}

REVIEW: Schema = {
    "type": "object",
    "required": ["action"],
    "additionalProperties": False,
    "properties": {
        "action": {"type": "string", "enum": ["confirm", "reject"]},
        "add_template": {"type": "boolean"},
    },
}

IMPORT_UPLOAD: Schema = {
    "type": "object",
    "required": ["list", "csv"],
    "properties": {
        "list": {"type": "string"},
        "csv": {"type": "string", "format": "binary", "description": "registry CSV: id, name, photo"},
        "photos": {"type": "string", "format": "binary", "description": "zip of the photos the CSV names"},
        "replace": {"type": "boolean", "description": "take people absent from the CSV off the list"},
    },
}

IMPORT_JOB: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "list": {"type": "string"},
        "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "total": {"type": "integer"},
        "done": {"type": "integer"},
        "counts": {"type": "object"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "object"}},
    },
}

SCHEMAS: dict[str, Schema] = {
    "List": WATCH_LIST,
    "Person": PERSON,
    "PersonDetail": PERSON_DETAIL,
    "Quality": QUALITY,
    "Enrolled": ENROLLED,
    "Decision": DECISION,
    "ImportJob": IMPORT_JOB,
}


PURGE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"dry_run": {"type": "boolean"}},
}
