"""The `face-watchlist` command. Errors the user can fix print one line and exit 1, no traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from face_watchlist import __version__
from face_watchlist.cli_addon import register as register_addon
from face_watchlist.cli_gallery import register as register_gallery
from face_watchlist.cli_trust import register as register_trust
from face_watchlist.config import Settings, load_settings, read_config
from face_watchlist.errors import FaceWatchlistError, NoFaceError
from face_watchlist.faces.cache import ModelCache
from face_watchlist.faces.embedder import similarity
from face_watchlist.faces.images import load_image
from face_watchlist.faces.packs import OFFLINE_PACKS, PACKS
from face_watchlist.faces.pipeline import FacePipeline, get_pack
from face_watchlist.faces.types import Face

Handler = Callable[[argparse.Namespace, Settings], int]
# the benchmarks' default people: the licence-clean photos the tests use (present in a checkout)
SAMPLE_GALLERY = Path(__file__).resolve().parents[2] / "tests/data/faces/face_recognition_knn/enroll"


def _settings(args: argparse.Namespace) -> Settings:
    faces: dict[str, Any] = {}
    for key in ("pack", "model_dir", "threads", "max_pixels"):
        if getattr(args, key, None) is not None:
            faces[key] = getattr(args, key)
    raw: dict[str, Any] = read_config(args.config) if getattr(args, "config", None) else {}
    raw["faces"] = {**raw.get("faces", {}), **faces}
    if args.data_dir:
        raw["data_dir"] = args.data_dir
    return load_settings(raw)


def _pipeline(settings: Settings) -> FacePipeline:
    return FacePipeline.load(settings.model_dir, settings.pipeline)


def _face_json(face: Face, settings: Settings, with_embedding: bool = False) -> dict[str, Any]:
    d, q = face.detection, face.quality
    out: dict[str, Any] = {
        "box": [round(v, 1) for v in d.box],
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in d.landmarks],
        "score": round(d.score, 4),
        "quality": {
            "face_px": round(q.face_px, 1),
            "sharpness": round(q.sharpness, 1),
            "frontalness": round(q.frontalness, 3),
            "det_score": round(q.det_score, 4),
        },
        "rejected": list(settings.gate.reasons(q)),
    }
    if with_embedding and face.embedding is not None:
        out["embedding"] = [round(float(v), 6) for v in face.embedding]
    return out


def cmd_detect(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = _pipeline(settings)
    results: list[dict[str, Any]] = []
    for path in args.images:
        faces = pipeline.analyse(load_image(path, settings.max_pixels), embed=False, pad_retry=True)
        results.append({"image": str(path), "faces": [_face_json(f, settings) for f in faces]})
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return 0
    for result in results:
        print(f"{result['image']}: {len(result['faces'])} face(s)")
        for face in result["faces"]:
            q = face["quality"]
            verdict = "; ".join(face["rejected"]) or "ok"
            print(
                f"  box={face['box']} score={face['score']:.2f} size={q['face_px']:.0f}px "
                f"sharpness={q['sharpness']:.0f} frontal={q['frontalness']:.2f}  {verdict}"
            )
    return 0


def _faces_or_fail(pipeline: FacePipeline, path: Path, settings: Settings) -> list[Face]:
    faces = pipeline.analyse(load_image(path, settings.max_pixels), pad_retry=True)
    if not faces:
        raise NoFaceError(f"{path}: no face found")
    return faces


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = _pipeline(settings)
    faces_a = _faces_or_fail(pipeline, args.image_a, settings)
    faces_b = _faces_or_fail(pipeline, args.image_b, settings)
    best, pair = max(
        (
            (similarity(a.embedding, b.embedding), (i, j))  # type: ignore[arg-type]
            for i, a in enumerate(faces_a)
            for j, b in enumerate(faces_b)
        ),
        key=lambda item: item[0],
    )
    if args.json:
        print(
            json.dumps(
                {
                    "similarity": round(best, 6),
                    "pack": pipeline.spec.name,
                    "face_a": pair[0],
                    "face_b": pair[1],
                    "faces_a": len(faces_a),
                    "faces_b": len(faces_b),
                }
            )
        )
    else:
        print(
            f"similarity {best:.4f} (pack {pipeline.spec.name}; best of {len(faces_a)}x{len(faces_b)} faces)"
        )
    return 0


def cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = _pipeline(settings)
    faces = _faces_or_fail(pipeline, args.image, settings)
    payload: dict[str, Any] = {
        "image": str(args.image),
        "pack": pipeline.spec.name,
        "faces": [_face_json(f, settings, with_embedding=True) for f in faces],
    }
    if args.json:
        print(json.dumps(payload))
    else:
        for n, face in enumerate(payload["faces"]):
            head = ", ".join(f"{v:.4f}" for v in face["embedding"][:4])
            print(f"face {n}: {len(face['embedding'])}-d [{head}, ...]")
    return 0


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    cache = ModelCache(settings.model_dir)
    rows: list[dict[str, Any]] = []
    for spec in PACKS.values():
        states = {s.file.name: s.state for s in cache.status(spec)}
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "licence": spec.licence,
                "commercial_use": spec.commercial_use,
                "embedding_size": spec.embedding_size,
                "installed": all(v == "installed" for v in states.values()),
                "files": states,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"model directory: {settings.model_dir}")
    for row in rows:
        mark = "installed" if row["installed"] else "not installed"
        print(f"{row['name']:<12} {row['embedding_size']:>4}-d  {mark:<13} {row['description']}")
        print(f"{'':<12} licence: {row['licence']}")
    return 0


def cmd_models_install(args: argparse.Namespace, settings: Settings) -> int:
    cache = ModelCache(settings.model_dir)
    names = args.names or list(OFFLINE_PACKS)
    for name in names:
        spec = get_pack(name)
        if not spec.commercial_use:
            print(f"note: {name}: {spec.licence}", file=sys.stderr)
        written = cache.install(spec, log=lambda msg: print(f"  {msg}", file=sys.stderr))
        print(f"{name}: {'installed' if written else 'already installed and verified'}")
    return 0


def cmd_models_verify(args: argparse.Namespace, settings: Settings) -> int:
    cache = ModelCache(settings.model_dir)
    names = args.names or [n for n, s in PACKS.items() if any(f.state != "missing" for f in cache.status(s))]
    bad = 0
    for name in names:
        for status in cache.status(get_pack(name)):
            ok = status.state == "installed"
            bad += not ok
            detail = f" ({status.detail})" if status.detail else ""
            print(f"{name}: {status.file.name}: {'ok' if ok else status.state}{detail}")
    if not names:
        print("no model pack is installed")
    return 1 if bad else 0


def cmd_bench_verify(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.verify import run_verify

    return _print_report(run_verify(_pipeline(settings), args, settings), args.json)


def cmd_bench_sizes(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.sizes import run_sizes

    return _print_report(run_sizes(_pipeline(settings), args), args.json)


def cmd_bench_speed(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.speed import run_speed

    return _print_report(run_speed(_pipeline(settings), args), args.json)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from face_watchlist.demo import run_demo

    return asyncio.run(run_demo(settings.model_dir, once=args.once))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import logging

    from face_watchlist.service import open_service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service, store = open_service(settings)
    try:
        asyncio.run(service.run())
    finally:
        store.close()
    return 0


def cmd_bench_latency(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.latency import run_latency

    return _print_report(run_latency(_pipeline(settings), args, settings.model_dir), args.json)


def cmd_bench_load(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.load import run_load

    return _print_report(run_load(_pipeline(settings), args, settings.model_dir), args.json)


def cmd_bench_identify(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.identify import run_identify

    return _print_report(run_identify(_pipeline(settings), args, settings), args.json)


def cmd_bench_lfw_split(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.identify import make_lfw_split

    counts = make_lfw_split(args.images, args.out, args.enrolled, args.strangers, args.seed, args.per_person)
    print(
        f"{args.out}/gallery: {counts['enrolled']} people; {args.out}/probes: their second photo "
        f"and {counts['strangers']} strangers"
    )
    return 0


def cmd_bench_api(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.api import run_api

    return _print_report(run_api(args, settings), args.json)


def cmd_bench_scale(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.bench.scale import run_scale

    args.threads = settings.pipeline.threads
    return _print_report(run_scale(args), args.json)


def _print_report(report: dict[str, Any], json_out: Path | None) -> int:
    text = json.dumps(report, indent=2)
    print(text)
    if json_out:
        Path(json_out).write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="face-watchlist", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--data",
        "--data-dir",
        dest="data_dir",
        help="data directory (default $FACE_WATCHLIST_DATA_DIR or ~/.local/share/face-watchlist)",
    )
    parser.add_argument("--model-dir", help="model cache (default <data-dir>/models)")
    parser.add_argument("--pack", choices=sorted(PACKS), help="model pack (default opencv-zoo)")
    parser.add_argument("--threads", type=int, help="onnxruntime / OpenCV threads (default 2)")
    parser.add_argument("--max-pixels", type=int, help="refuse images larger than this many pixels")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_: str, parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        p.set_defaults(handler=handler)
        return p

    p = add("detect", cmd_detect, "find faces and their quality")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--json", action="store_true")
    p = add("compare", cmd_compare, "similarity of the best face pair of two images")
    p.add_argument("image_a", type=Path)
    p.add_argument("image_b", type=Path)
    p.add_argument("--json", action="store_true")
    p = add("embed", cmd_embed, "embeddings of the faces in an image")
    p.add_argument("image", type=Path)
    p.add_argument("--json", action="store_true")

    register_gallery(sub, add)
    register_addon(sub, add)

    p = add("demo", cmd_demo, "the whole flow: a broker, a simulated Frigate and three people")
    p.add_argument("--once", action="store_true", help="replay once and exit (default: until Ctrl-C)")
    p = add("run", cmd_run, "the service: Frigate's person events in, decisions out on MQTT")
    p.add_argument("--config", type=Path, help="YAML or JSON options (the add-on's options.json too)")

    models = add("models", lambda a, s: 0, "list, install and verify model packs")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = add("list", cmd_models_list, "packs, licences and whether each is installed", msub)
    p.add_argument("--json", action="store_true")
    p = add("install", cmd_models_install, "fetch, verify and cache packs (default: the offline ones)", msub)
    p.add_argument("names", nargs="*", metavar="NAME")
    p = add("verify", cmd_models_verify, "re-check the sha256 of installed files", msub)
    p.add_argument("names", nargs="*", metavar="NAME")

    bench = add("bench", lambda a, s: 0, "accuracy and speed benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    p = add("verify", cmd_bench_verify, "LFW verification protocol", bsub)
    p.add_argument("--pairs", type=Path, required=True, help="pair file (View 1 or View 2 layout)")
    p.add_argument("--images", type=Path, required=True, help="LFW images directory (<name>/<nnnn>.jpg)")
    p.add_argument("--tune", type=Path, help="pair file to choose the threshold on (View 1)")
    p.add_argument("--pad", type=int, default=40, help="border added around each photo (default 40 px)")
    p.add_argument("--limit", type=int, help="use only the first N pairs of each file (smoke runs)")
    p.add_argument("--json", type=Path, help="also write the report here")
    p = add("sizes", cmd_bench_sizes, "detection and similarity against face size", bsub)
    p.add_argument("--images", type=Path, required=True, help="LFW images directory")
    p.add_argument("--people", type=int, default=150, help="people with two photos to sample")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path, help="write a PNG plot of the curves")
    p = add("identify", cmd_bench_identify, "open-set 1:N identification (FNIR at FPIR)", bsub)
    p.add_argument("--gallery", type=Path, required=True, help="<identity>/*.jpg to enrol")
    p.add_argument("--probes", type=Path, required=True, help="<identity>/*.jpg to search")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path, help="write the DET curve (PNG)")
    p = add("lfw-split", cmd_bench_lfw_split, "build an identification split of LFW (symlinks)", bsub)
    p.add_argument("--images", type=Path, required=True, help="LFW images directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--enrolled", type=int, default=600)
    p.add_argument("--strangers", type=int, default=1200)
    p.add_argument("--per-person", type=int, default=1, help="photos enrolled per person")
    p.add_argument("--seed", type=int, default=1)
    p = add("scale", cmd_bench_scale, "search index at registry scale (synthetic vectors)", bsub)
    p.add_argument("--templates", type=int, required=True)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, help="keep the index here (default: a temporary folder)")
    p.add_argument("--m", type=int, help="hnswlib M (default: the index's)")
    p.add_argument("--ef-construction", type=int, help="hnswlib ef_construction")
    p.add_argument("--ef-search", type=int, help="hnswlib ef at search time")
    p.add_argument(
        "--sweep", type=lambda v: [int(x) for x in v.split(",")], help="also measure these ef values"
    )
    p.add_argument("--json", type=Path)
    p = add("latency", cmd_bench_latency, "Frigate event to decision through a real broker", bsub)
    p.add_argument(
        "--gallery",
        type=Path,
        default=SAMPLE_GALLERY,
        help="<person>/*.jpg enrolled; each person's last photo is replayed",
    )
    p.add_argument("--events", type=int, default=30)
    p.add_argument("--rate", type=float, default=1.0, help="events per second in the steady phase")
    p.add_argument("--burst", type=int, default=60, help="events published at once to measure saturation")
    p.add_argument("--soak", type=int, default=0, help="then this many events for memory growth (e.g. 10000)")
    p.add_argument("--json", type=Path)
    p = add(
        "load", cmd_bench_load, "cameras bursting through a real broker: health, queue, drops, memory", bsub
    )
    p.add_argument(
        "--gallery",
        type=Path,
        default=SAMPLE_GALLERY,
        help="<person>/*.jpg enrolled and replayed",
    )
    p.add_argument("--cameras", type=int, default=16)
    p.add_argument("--rate", type=float, default=20.0, help="new tracked people per second, all cameras")
    p.add_argument("--seconds", type=float, default=120.0, help="length of the burst")
    p.add_argument("--dwell", type=float, default=2.0, help="seconds each person stays before `end`")
    p.add_argument("--idle", type=float, default=60.0, help="quiet seconds after the burst before memory")
    p.add_argument("--queue-size", type=int, default=32, help="the service's watch.queue_size")
    p.add_argument("--json", type=Path)
    p = add("api", cmd_bench_api, "HTTP API list pages on a seeded registry-size database", bsub)
    p.add_argument("--people", type=int, default=10_000)
    p.add_argument("--decisions", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=100, help="timed requests per route")
    p.add_argument("--json", type=Path)
    p = add("speed", cmd_bench_speed, "pipeline throughput and overhead over bare inference", bsub)
    p.add_argument("--images", type=Path, required=True, help="LFW images directory")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pad", type=int, default=40)
    p.add_argument("--json", type=Path)
    register_trust(sub, add, bsub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args, _settings(args)))
    except FaceWatchlistError as err:
        print(f"face-watchlist: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
