"""Registry imports run as background jobs with progress and a per-row report.

The upload (CSV, optional zip of photos) is saved to a private temporary folder, parsed with the
command line's registry rules (malformed rows reported by line and skipped whole, paths kept
inside the zip), then enrolled row by row on the event loop with the models in a thread, so the
service keeps answering and matching while a registry of thousands of rows goes in. One job at
a time; the last few finished jobs are kept for the page.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.gallery import enroll
from face_watchlist.gallery.store import WatchList
from face_watchlist.web.context import WebService
from face_watchlist.web.enrolment import WebEnroller

LOG = logging.getLogger(__name__)
KEEP_FINISHED = 10
MAX_REPORT_ROWS = 20_000
State = Literal["queued", "running", "done", "failed"]


@dataclass
class Job:
    id: str
    list_name: str
    actor: str
    replace: bool
    state: State = "queued"
    total: int = 0
    done: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # malformed CSV rows, by line
    rows: list[dict[str, str]] = field(default_factory=list)
    removed_people: list[str] = field(default_factory=list)
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def json(self, with_rows: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "list": self.list_name,
            "actor": self.actor,
            "replace": self.replace,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "counts": dict(self.counts),
            "errors": self.errors,
            "removed_people": self.removed_people,
            "message": self.message,
            "started": self.started,
            "finished": self.finished,
        }
        if with_rows:
            out["rows"] = self.rows
        return out


class ImportJobs:
    def __init__(self, service: WebService) -> None:
        self.service = service
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = asyncio.Lock()  # one import at a time: they compete for the same models
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self, watch_list: WatchList, csv_data: bytes, zip_data: bytes | None, actor: str, replace: bool
    ) -> Job:
        job = Job(secrets.token_hex(8), watch_list.name, actor, replace)
        self.jobs[job.id] = job
        finished = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            self.jobs.pop(old.id, None)
        task = asyncio.create_task(self._run(job, watch_list, csv_data, zip_data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job, watch_list: WatchList, csv_data: bytes, zip_data: bytes | None) -> None:
        folder = Path(tempfile.mkdtemp(prefix="fw-import-"))
        try:
            async with self._lock:
                job.state = "running"
                (folder / "registry.csv").write_bytes(csv_data)
                photos = folder / "photos.zip" if zip_data is not None else folder
                if zip_data is not None:
                    photos.write_bytes(zip_data)
                jobs, job.errors = enroll.registry_jobs(folder / "registry.csv", photos)
                job.total = len(jobs)
                await self._enrol(job, watch_list, jobs)
                job.state = "done"
        except FaceWatchlistError as err:
            job.state, job.message = "failed", str(err)
        except Exception as err:  # reported on the page; the service goes on
            LOG.exception("import %s failed", job.id)
            job.state, job.message = "failed", f"internal error: {type(err).__name__}"
        finally:
            job.finished = time.time()
            shutil.rmtree(folder, ignore_errors=True)

    async def _enrol(self, job: Job, watch_list: WatchList, jobs: list[enroll.PhotoJob]) -> None:
        enroller = WebEnroller(self.service, "import", job.actor)
        gallery = self.service.gallery
        for photo_job in jobs:
            status, reason = await enroller.enrol_job(photo_job, watch_list)
            job.done += 1
            job.counts[status.replace(" ", "_")] += 1
            if len(job.rows) < MAX_REPORT_ROWS:
                job.rows.append(
                    {
                        "source": photo_job.source,
                        "person": photo_job.display_name,
                        "status": status,
                        "reason": reason,
                    }
                )
            await asyncio.sleep(0)  # let requests and live events through between rows
        if job.replace:
            summary = enroll.Summary()
            if enroll.remove_absent(gallery, watch_list, jobs, summary, bad_rows=job.errors, actor=job.actor):
                job.removed_people = summary.removed_people
            else:
                job.message = "people absent from the CSV were kept: it has malformed rows"
        gallery.save_index()
        details = {"source": "web upload", "list": watch_list.name, **job.counts, "bad_rows": len(job.errors)}
        details |= {"removed_people": len(job.removed_people), "replace": job.replace}
        with gallery.store.transaction():  # one entry per import; each enrolment has its own too
            gallery.store.record("import", f"list:{watch_list.id}", details, job.actor)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
