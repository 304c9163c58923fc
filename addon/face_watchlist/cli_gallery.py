"""The gallery's commands: lists, people, enroll, import, match, reembed."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from face_watchlist.config import Settings
from face_watchlist.errors import FaceWatchlistError, NoFaceError
from face_watchlist.faces.images import load_image
from face_watchlist.faces.packs import Calibration
from face_watchlist.faces.pipeline import FacePipeline, get_pack
from face_watchlist.gallery import enroll
from face_watchlist.gallery.decide import Decision
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store, WatchList

Handler = Callable[[argparse.Namespace, Settings], int]


def cli_actor() -> str:
    """`cli:<os user>`: who the audit log records for changes made from the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a container)
        user = str(os.getuid())
    return f"cli:{user}"


@contextmanager
def open_gallery(settings: Settings) -> Iterator[Gallery]:
    store = Store(settings.data_dir, actor=cli_actor(), cipher=settings.cipher())
    try:
        store.sweep_photos()
        yield Gallery(store, get_pack(settings.pipeline.pack))
    finally:
        store.close()


def _pipeline(settings: Settings) -> FacePipeline:
    return FacePipeline.load(settings.model_dir, settings.pipeline)


def _list_json(w: WatchList) -> dict[str, Any]:
    return {
        "name": w.name,
        "kind": w.kind,
        "threshold": w.threshold,
        "margin": w.margin,
        "policy": w.policy,
        "schedule": w.schedule,
    }


# lists ---------------------------------------------------------------------------------------


def cmd_lists(args: argparse.Namespace, settings: Settings) -> int:
    with open_gallery(settings) as gallery:
        store, defaults = gallery.store, gallery.spec.thresholds
        action = args.lists_command or "show"
        if action == "add":
            store.create_list(
                args.name, args.kind, args.threshold, args.margin, args.policy, schedule=args.schedule
            )
        elif action == "set":
            changes = {
                k: getattr(args, k)
                for k in ("kind", "threshold", "margin", "policy")
                if getattr(args, k) is not None
            }
            if args.schedule is not None:
                changes["schedule"] = args.schedule or None  # "": always
            if args.rename:
                changes["name"] = args.rename
            store.update_list(args.name, **changes)
        elif action == "remove":
            gallery.removed(store.delete_list(args.name))
            gallery.save_index()
        rows = []
        for w in store.lists():
            row = _list_json(w) | {"people": len(store.people(w.name))}
            row["effective_threshold"] = w.threshold if w.threshold is not None else defaults.threshold
            row["effective_margin"] = w.margin if w.margin is not None else defaults.margin
            rows.append(row)
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(
                f"{r['name']:<20} {r['kind']:<6} {r['people']:>6} people"
                f"  threshold {r['effective_threshold']:.2f}"
                f"  margin {r['effective_margin']:.2f}  {r['policy']}"
            )
        if not rows:
            print("no lists yet: `face-watchlist lists add NAME` or `enroll --list NAME ...`")
    return 0


# people --------------------------------------------------------------------------------------


def cmd_people(args: argparse.Namespace, settings: Settings) -> int:
    with open_gallery(settings) as gallery:
        store = gallery.store
        action = args.people_command or "show"
        if action == "remove":
            if args.list:
                gallery.removed(store.remove_membership(args.id, store.get_list(args.list).id))
            else:
                gallery.removed(store.delete_person(args.id))
            gallery.save_index()
            print(f"person {args.id} removed" + (f" from {args.list}" if args.list else " with their photos"))
            return 0
        if action == "move":
            person = store.get_person(args.id)
            target = store.ensure_list(args.to)
            store.add_membership(person.id, target.id)
            if args.source:
                gallery.removed(store.remove_membership(person.id, store.get_list(args.source).id))
                gallery.save_index()
        if action == "rename":
            store.update_person(args.id, display_name=args.name)
        people = store.people(getattr(args, "list", None) if action == "show" else None)
        rows: list[dict[str, Any]] = [
            {
                "id": p.id,
                "name": p.display_name,
                "external_id": p.external_id,
                "lists": [w.name for w in store.person_lists(p.id)],
                "photos": len(store.photos(p.id)),
                "templates": len(store.templates(gallery.spec.name, p.id)),
            }
            for p in people
        ]
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            ext = f" [{r['external_id']}]" if r["external_id"] else ""
            print(f"{r['id']:>6}  {r['name']}{ext}  lists: {', '.join(r['lists'])}  photos: {r['photos']}")
    return 0


# enrolment -----------------------------------------------------------------------------------


def _progress(total: int) -> Callable[[Iterator[enroll.PhotoJob]], Iterator[enroll.PhotoJob]]:
    def wrap(jobs: Iterator[enroll.PhotoJob]) -> Iterator[enroll.PhotoJob]:
        yield from tqdm(jobs, total=total, unit="photo", file=sys.stderr, disable=not sys.stderr.isatty())

    return wrap


def _report(summary: enroll.Summary, errors: list[str], as_json: bool) -> int:
    report: dict[str, Any] = {
        **summary.counts(),
        "skipped_by_reason": summary.skip_reasons(),
        "skipped": summary.counts()["skipped"] + len(errors),
        "skipped_items": [
            {"source": o.source, "person": o.person, "reason": o.reason}
            for o in summary.outcomes
            if o.status == "skipped"
        ],
        "bad_rows": errors,
        "removed": summary.removed_people,
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    counts = summary.counts()
    print(
        f"enrolled {counts['enrolled']}, already enrolled {counts['already_enrolled']}, "
        f"skipped {counts['skipped'] + len(errors)}, removed {counts['removed_people']} people"
    )
    for reason, n in sorted(report["skipped_by_reason"].items()):
        print(f"  skipped ({reason}): {n}")
    for line in errors:
        print(f"  bad row: {line}")
    for item in report["skipped_items"]:
        print(f"  {item['source']}: {item['reason']}")
    for name in summary.removed_people:
        print(f"  removed: {name}")
    return 0


def cmd_enroll(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = _pipeline(settings)
    with open_gallery(settings) as gallery:
        watch_list = gallery.store.ensure_list(args.list)
        jobs = enroll.file_jobs(args.images, args.name, args.external_id, args.face)
        enroller = enroll.Enroller(gallery, pipeline, settings.gate, "enrol")
        summary = enroller.run(jobs, watch_list)
    code = _report(summary, [], args.json)
    return code if summary.counts()["enrolled"] + summary.counts()["already_enrolled"] else 1


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.path
    errors: list[str] = []
    if path.is_dir():
        jobs = enroll.folder_jobs(path)
    elif path.suffix.lower() == ".csv":
        jobs, errors = enroll.registry_jobs(path, args.photos or path.parent)
    elif path.suffix.lower() == ".zip":
        csv_path = args.csv
        if csv_path is None:
            raise FaceWatchlistError(f"{path}: a zip of photos needs its registry CSV: --csv FILE")
        jobs, errors = enroll.registry_jobs(csv_path, path)
    else:
        raise FaceWatchlistError(f"{path}: expected a folder of <person>/*.jpg, a registry .csv or a .zip")
    pipeline = _pipeline(settings)
    with open_gallery(settings) as gallery:
        watch_list = gallery.store.ensure_list(args.list)
        enroller = enroll.Enroller(gallery, pipeline, settings.gate, "import")
        summary = enroller.run(jobs, watch_list, progress=_progress(len(jobs)))
        replaced = args.replace and enroll.remove_absent(gallery, watch_list, jobs, summary, bad_rows=errors)
        if args.replace and not replaced:
            print(
                f"--replace not applied: {len(errors)} malformed row(s); nobody was removed", file=sys.stderr
            )
        enroll.record_import(gallery, path.name, watch_list, summary, errors, bool(replaced))
    return _report(summary, errors, args.json)


# matching ------------------------------------------------------------------------------------


def decision_json(decision: Decision, gallery: Gallery) -> dict[str, Any]:
    store = gallery.store

    def name(person_id: int | None) -> str | None:
        return store.get_person(person_id).display_name if person_id is not None else None

    runner = decision.runner_up
    return {
        "decision": decision.outcome,
        "reason": decision.reason,
        "person": name(decision.person_id) if decision.outcome == "match" else None,
        "person_id": decision.person_id if decision.outcome == "match" else None,
        "closest": name(decision.person_id),
        "list": decision.list.name if decision.list else None,
        "list_kind": decision.list.kind if decision.list else None,
        "score": round(decision.score, 4),
        "false_match_rate": float(f"{decision.false_match_rate:.3g}"),
        "margin": round(decision.margin, 4),
        "runner_up": {"person": name(runner.person_id), "score": round(runner.score, 4)} if runner else None,
        "suppressed_by_rejection": [name(p) for p in decision.suppressed],
    }


def cmd_match(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = _pipeline(settings)
    faces = pipeline.analyse(load_image(args.image, settings.max_pixels), pad_retry=True)
    if not faces:
        raise NoFaceError(f"{args.image}: no face found")
    with open_gallery(settings) as gallery:
        results = []
        for number, face in enumerate(faces):
            assert face.embedding is not None
            reasons = settings.gate.reasons(face.quality)
            entry: dict[str, Any] = {"face": number, "box": [round(v, 1) for v in face.detection.box]}
            entry["quality_issues"] = list(reasons)
            entry |= decision_json(gallery.match(face.embedding), gallery)
            if reasons and entry["decision"] == "match":  # a face the gate refuses never alerts
                entry |= {"decision": "nobody", "reason": "low_quality", "person": None, "person_id": None}
            results.append(entry)
    if args.json:
        print(json.dumps({"image": str(args.image), "pack": pipeline.spec.name, "faces": results}, indent=2))
        return 0
    for r in results:
        verdict = (
            f"MATCH {r['person']} on {r['list']}"
            if r["decision"] == "match"
            else f"nobody ({r['reason'].replace('_', ' ')}; closest {r['closest']})"
        )
        print(
            f"face {r['face']}: {verdict}  score {r['score']:.3f} ({_fmr(r['false_match_rate'])})"
            f"  margin {r['margin']:.3f}"
        )
        if r["quality_issues"]:
            print(f"  quality: {'; '.join(r['quality_issues'])}")
    return 0


def _fmr(rate: float) -> str:
    return "FMR<1e-6" if rate <= Calibration.FLOOR else f"FMR~{rate:.1e}"


def cmd_reembed(args: argparse.Namespace, settings: Settings) -> int:
    """Templates for the configured pack from the kept enrolment photos."""
    pipeline = _pipeline(settings)
    with open_gallery(settings) as gallery:
        done, failed = 0, []
        for photo in tqdm(
            gallery.store.photos(), unit="photo", file=sys.stderr, disable=not sys.stderr.isatty()
        ):
            face, problem = enroll.refind_face(
                pipeline, partial(gallery.store.read_photo, photo["path"]), photo["face_box"]
            )
            if face is None or face.embedding is None:
                failed.append(f"{photo['path']}: {problem}")
                continue
            q = face.quality
            template_id, replaced = gallery.store.add_template(
                photo["person_id"],
                photo["id"],
                pipeline.spec.name,
                face.embedding,
                (q.face_px, q.sharpness, q.frontalness, q.det_score),
                "reembed",
            )
            gallery.removed(replaced)
            gallery.added(template_id, face.embedding)
            done += 1
        gallery.save_index()
        with gallery.store.transaction():
            gallery.store.record(
                "reembed", f"pack:{pipeline.spec.name}", {"done": done, "failed": len(failed)}
            )
    print(f"re-embedded {done} photos with {pipeline.spec.name}; {len(failed)} failed")
    for line in failed:
        print(f"  {line}")
    return 1 if failed else 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("lists", cmd_lists, "show, add, change or remove lists")
    p.add_argument("--json", action="store_true")
    lsub = p.add_subparsers(dest="lists_command")
    q = add("add", cmd_lists, "create a list", lsub)
    q.add_argument("name")
    q.add_argument("--kind", choices=["watch", "known"], default="watch")
    q.add_argument("--threshold", type=float, help="raw cosine (default: the pack's)")
    q.add_argument("--margin", type=float, help="over the best other person (default: the pack's)")
    q.add_argument("--policy", choices=["review_first", "immediate"])
    q.add_argument("--schedule", help="immediate lists: when to alert at once, e.g. 'mon-fri 07:00-17:00'")
    q = add("set", cmd_lists, "change a list", lsub)
    q.add_argument("name")
    q.add_argument("--rename")
    q.add_argument("--kind", choices=["watch", "known"])
    q.add_argument("--threshold", type=float)
    q.add_argument("--margin", type=float)
    q.add_argument("--policy", choices=["review_first", "immediate"])
    q.add_argument("--schedule", help="'mon-fri 07:00-17:00; sat 09:00-12:00', or '' for always")
    q = add("remove", cmd_lists, "delete a list (people on no other list are deleted)", lsub)
    q.add_argument("name")

    p = add("people", cmd_people, "show, rename, move or remove people")
    p.add_argument("--list", help="only the people on this list")
    p.add_argument("--json", action="store_true")
    psub = p.add_subparsers(dest="people_command")
    q = add("rename", cmd_people, "change a display name", psub)
    q.add_argument("id", type=int)
    q.add_argument("name")
    q = add("move", cmd_people, "put a person on another list", psub)
    q.add_argument("id", type=int)
    q.add_argument("--to", required=True)
    q.add_argument("--from", dest="source", help="and take them off this one")
    q = add("remove", cmd_people, "delete a person (or only take them off --list)", psub)
    q.add_argument("id", type=int)
    q.add_argument("--list")

    p = add("enroll", cmd_enroll, "enrol photos of one person on a list")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--list", required=True, help="created as a watch list if it does not exist")
    p.add_argument("--name", required=True)
    p.add_argument("--external-id", help="e.g. the registry number")
    p.add_argument("--face", type=int, help="which face of a photo with several (0 = largest)")
    p.add_argument("--json", action="store_true")

    p = add("import", cmd_import, "enrol a folder of <person>/*.jpg or a registry export")
    p.add_argument("path", type=Path, help="folder, registry .csv, or .zip of photos (with --csv)")
    p.add_argument("--list", required=True)
    p.add_argument("--photos", type=Path, help="photo folder or zip for a CSV (default: beside it)")
    p.add_argument("--csv", type=Path, help="the registry CSV for a .zip")
    p.add_argument("--replace", action="store_true", help="remove people absent from this import")
    p.add_argument("--json", action="store_true")

    p = add("match", cmd_match, "who, if anyone, is in this photo")
    p.add_argument("image", type=Path)
    p.add_argument("--json", action="store_true")

    add("reembed", cmd_reembed, "re-embed kept enrolment photos with the configured pack")
