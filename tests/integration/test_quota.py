"""A project's quota holds exactly under concurrency, on SQLite and PostgreSQL: parallel creates admit no more than
the limit (the rest are refused, or queued), and workers claiming at once never run more of a project's jobs."""

from __future__ import annotations

import threading

import pytest
from tests.integration.conftest import add_pending_jobs

from tuneforge.control import states
from tuneforge.control.db import Store
from tuneforge.control.tables import TuningJobRow
from tuneforge.errors import ResourceExhausted
from tuneforge.settings import Settings
from tuneforge.wire.tuning import TuningJob

CREATES = 12


def _create_all(store: Store, settings: Settings, tmp_path) -> list[object]:
    from tests.integration.conftest import write_dataset

    from tuneforge.control.tuning_jobs import TuningJobService

    write_dataset(settings.resolved_bucket_root / "b" / "train.jsonl", n=4)
    job = TuningJob.model_validate(
        {"baseModel": "tiny-llama", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl"}}
    )
    service = TuningJobService(store, settings)
    service.create("warm", "us-central1", job)  # the stand-in is built once, before the race
    results: list[object] = []
    start = threading.Barrier(CREATES)

    def create() -> None:
        start.wait()
        try:
            results.append(service.create("p", "us-central1", job).state)
        except ResourceExhausted as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(CREATES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.mark.parametrize("queue", [False, True], ids=["refused", "queued"])
def test_parallel_creates_admit_exactly_the_quota(every_database_url, tmp_path, queue):
    settings = Settings(home=tmp_path, dev=True, max_running_jobs_per_project=1, queue_over_quota=queue)
    store = Store(every_database_url)
    results = _create_all(store, settings, tmp_path)
    assert len(results) == CREATES
    admitted = [r for r in results if r == "JOB_STATE_PENDING"]
    assert len(admitted) == 1, results
    if queue:
        assert results.count("JOB_STATE_QUEUED") == CREATES - 1
    else:
        assert sum(isinstance(r, ResourceExhausted) for r in results) == CREATES - 1
    with store.session() as s:
        stored = s.query(TuningJobRow).filter(TuningJobRow.project == "p").all()
    assert sum(r.state == states.PENDING for r in stored) == 1
    store.dispose()


def test_workers_claiming_at_once_keep_a_project_within_its_quota(every_database_url, tmp_path):
    from tuneforge.worker.worker import Worker

    settings = Settings(home=tmp_path, max_running_jobs_per_project=2)
    store = Store(every_database_url)
    add_pending_jobs(store, 10)
    claimed: list[str] = []
    start = threading.Barrier(6)

    def claim(name: str) -> None:
        worker = Worker(Store(every_database_url, migrate=False), settings, worker_id=name)
        start.wait()
        for _ in range(5):
            job = worker.claim()
            if job is not None:
                claimed.append(job)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == 2 and len(set(claimed)) == 2, claimed
    store.dispose()
