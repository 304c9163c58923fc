"""The trust commands: `audit verify|list|export|head`, `purge`, `person export|delete`, `calibrate`,
`bench audit`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from face_watchlist.cli_gallery import cli_actor, open_gallery
from face_watchlist.config import Settings
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.pipeline import get_pack
from face_watchlist.gallery.records import Records
from face_watchlist.gallery.store import Store
from face_watchlist.trust.audit import AuditLog, VerifyReport


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("an anchor is SEQ:HASH, as printed by `audit head`")
    return int(seq), digest.lower()


def _open(settings: Settings) -> Store:
    if not (settings.data_dir / "gallery.sqlite3").exists():
        raise FaceWatchlistError(f"{settings.data_dir}: no gallery database here yet")
    return Store(settings.data_dir, actor=cli_actor(), cipher=settings.cipher())


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    store = _open(settings)
    try:
        report: VerifyReport = store.audit.verify(anchor=args.anchor)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    elif report.ok:
        print(
            f"audit log intact: {report.entries} entries, head {report.head_seq}:{report.head_hash}"
            f" ({report.seconds:.2f} s)"
        )
    else:
        print(f"audit log BROKEN at entry {report.first_broken} ({report.reason}): {report.message}")
        print(f"  {report.entries} entries before it are intact")
    return 0 if report.ok else 2


def cmd_audit_head(args: argparse.Namespace, settings: Settings) -> int:
    store = _open(settings)
    try:
        seq, digest = store.audit.head()
    finally:
        store.close()
    print(f"{seq}:{digest}")
    return 0


def cmd_audit_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _open(settings)
    try:
        found = AuditLog(store).entries(args.since, args.until, args.limit, args.subject, args.action)
    finally:
        store.close()
    if args.json:
        print(json.dumps([e.as_dict() for e in found], indent=2, ensure_ascii=False))
        return 0
    for e in found:
        print(f"{e.seq:>8}  {e.time}  {e.actor:<16} {e.action:<18} {e.subject or '-':<14} {e.details}")
    if not found:
        print("no audit entries match")
    return 0


def cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    store = _open(settings)
    try:
        count = store.audit.export(args.out, args.format, args.since, args.until)
        # exporting the audit trail is itself recorded
        store.audit.append(
            store.actor,
            "audit.export",
            None,
            {"entries": count, "format": args.format, "since": args.since, "until": args.until},
        )
    finally:
        store.close()
    print(f"{count} entries written to {args.out}")
    return 0


def cmd_bench_audit(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.audit import run_audit

    report = run_audit(args.entries, args.workdir)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.trust import calibrate

    spec = get_pack(settings.pipeline.pack)
    store = _open(settings)
    try:
        report = calibrate.calibrate_store(store, spec, list_name=args.list)
    finally:
        store.close()
    if args.plot:
        try:
            calibrate.plot(report, args.plot)
        except calibrate.PlotUnavailable as err:
            print(f"face-watchlist: warning: {err}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        print(calibrate.describe(report))
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.trust.retention import purge

    store = _open(settings)
    try:
        counts = purge(
            Records(store, settings.max_pixels), settings.retention, dry_run=args.dry_run, actor=cli_actor()
        )
    finally:
        store.close()
    verb = "would remove" if args.dry_run else "removed"
    print(
        json.dumps(counts)
        if args.json
        else f"purge {verb}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 0


def cmd_person_export(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.trust.person import export_person

    with open_gallery(settings) as gallery:
        counts = export_person(
            gallery, Records(gallery.store, settings.max_pixels), args.id, args.out, cli_actor()
        )
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_person_delete(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.trust.person import delete_person

    with open_gallery(settings) as gallery:
        person = gallery.store.get_person(args.id)
        if not args.yes:
            raise FaceWatchlistError(
                f"this deletes {person.display_name} (id {person.id}) with every photo, template and match:"
                " add --yes to confirm"
            )
        templates = delete_person(gallery, args.id, cli_actor())
    print(f"deleted {person.display_name} (id {person.id}): {templates} templates, their photos and matches")
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser], bench: Any | None = None) -> None:
    p = add("audit", lambda a, s: 0, "the audit log: verify, list, export, head")
    asub = p.add_subparsers(dest="audit_command", required=True)
    q = add("verify", cmd_audit_verify, "check the hash chain; exit 2 at the first broken entry", asub)
    q.add_argument("--anchor", type=_anchor, help="SEQ:HASH recorded earlier with `audit head`")
    q.add_argument("--json", action="store_true")
    add("head", cmd_audit_head, "the last entry's SEQ:HASH, to record somewhere else", asub)
    q = add("list", cmd_audit_list, "show entries", asub)
    q.add_argument("--since", help="ISO date or time (UTC unless it says otherwise)")
    q.add_argument("--until")
    q.add_argument("--subject", help="e.g. person:12 or list:3")
    q.add_argument("--action", help="e.g. person (person.*) or photo.enrol")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q = add("export", cmd_audit_export, "write entries as CSV or JSON", asub)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--format", choices=["csv", "json"], default="csv")
    q.add_argument("--since")
    q.add_argument("--until")

    p = add("purge", cmd_purge, "apply the retention schedule now (the service also does, periodically)")
    p.add_argument("--dry-run", action="store_true", help="only count what would go")
    p.add_argument("--json", action="store_true")

    p = add("person", lambda a, s: 0, "one person's data: export it, or delete it")
    psub = p.add_subparsers(dest="person_command", required=True)
    q = add("export", cmd_person_export, "a zip with their photos, templates' metadata, matches, audit", psub)
    q.add_argument("id", type=int)
    q.add_argument("--out", type=Path, required=True)
    q = add("delete", cmd_person_delete, "delete them: templates, photos, matches, evidence, index", psub)
    q.add_argument("id", type=int)
    q.add_argument("--yes", action="store_true", help="confirm")

    p = add("calibrate", cmd_calibrate, "expected false matches on your own gallery, from its templates")
    p.add_argument("--list", help="only the people on this list (default: everyone enrolled)")
    p.add_argument("--plot", type=Path, help="write both score distributions with the threshold (PNG)")
    p.add_argument("--json", action="store_true")

    if bench is not None:
        p = add("audit", cmd_bench_audit, "audit log append cost and verify time", bench)
        p.add_argument("--entries", type=int, default=100_000)
        p.add_argument("--workdir", type=Path, help="where the temporary database goes")
        p.add_argument("--json", type=Path)
