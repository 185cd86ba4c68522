"""FastAPI app factory: store, services, routers, errors; optionally an in-process worker."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tuneforge.api import errors
from tuneforge.api.deps import parse_api_keys
from tuneforge.api.routers import (
    endpoints,
    models,
    pipeline_jobs,
    sdk_support,
    tuning_jobs,
)
from tuneforge.control.db import Store
from tuneforge.control.models import ModelService
from tuneforge.control.pipeline_jobs import PipelineJobService
from tuneforge.control.tuning_jobs import TuningJobService
from tuneforge.control.endpoints import EndpointService
from tuneforge.infer.engine import Engine
from tuneforge.settings import Settings
from tuneforge.worker.worker import Worker


def create_app(settings: Settings, *, with_worker: bool = True, store: Store | None = None) -> FastAPI:
    store = store or Store(settings.resolved_database_url)  # upgrades an empty or older database

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        thread = None
        if with_worker and settings.workers > 0:
            worker = Worker(store, settings, slots=settings.workers)
            thread = threading.Thread(target=worker.run, args=(stop,), name="tuneforge-worker", daemon=True)
            thread.start()
        app.state.endpoints.resume()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.engine.close()
            stop.set()
            if thread is not None:
                thread.join(timeout=30)
            store.dispose()

    app = FastAPI(title="tuneforge", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.api_keys = parse_api_keys(settings.api_keys)
    app.state.tuning_jobs = TuningJobService(store, settings)
    app.state.pipeline_jobs = PipelineJobService(store, settings)
    app.state.models = ModelService(store)
    app.state.engine = Engine(device=settings.serve_device, max_batch=settings.serve_max_batch_size,
                              batch_wait_ms=settings.serve_batch_wait_ms,
                              memory_limit_bytes=settings.serve_memory_limit_bytes,
                              default_max_tokens=settings.serve_default_max_tokens)
    app.state.endpoints = EndpointService(store, settings, app.state.engine)
    app.state.ready = False
    errors.install(app)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok" if app.state.ready else "starting", "database": store.dialect}

    for router in (tuning_jobs.router, pipeline_jobs.router, models.router, endpoints.router, sdk_support.router):
        app.include_router(router)
    return app
