"""Deployed models and the serving engine: loading a deployment (by its deploy operation, or on its first request
after a restart), finishing its operation, and picking the deployment that answers a request.

The database is the source of truth (``deployed_models``); the engine holds what is loaded. Vertex's documents
warn that the first requests after a deploy are slower: a model a worker deployed, or one deployed before a restart,
loads on its first request here.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tuneforge.catalog.catalog import ResolvedModel
from tuneforge.catalog.model_folder import folder_bytes
from tuneforge.catalog.weights import materialize
from tuneforge.control import operations
from tuneforge.control.db import Store, fetch, get_scoped
from tuneforge.control.registry import endpoint_name, model_weights
from tuneforge.control.tables import DeployedModelRow, EndpointRow, ModelRow, utcnow
from tuneforge.errors import FailedPrecondition, TuneforgeError, rpc_code
from tuneforge.settings import Settings
from tuneforge.wire import names
from tuneforge.wire.base import timestamp

if TYPE_CHECKING:
    from tuneforge.infer.engine import Deployment, Engine

log = logging.getLogger("tuneforge.serve")
V1 = "type.googleapis.com/google.cloud.aiplatform.v1"
GARDEN = "type.googleapis.com/google.cloud.aiplatform.v1beta1"


def deployed_json(row: DeployedModelRow) -> dict[str, Any]:
    """A DeployedModel with only fields of the API type (it is also returned inside strictly parsed operations)."""
    return {
        "id": row.id,
        "model": names.name("models", row.project, row.location, row.model_id),
        "modelVersionId": "1",
        "displayName": row.display_name,
        "createTime": timestamp(row.create_time),
        **(row.resources or {}),
    }


class Deployments:
    def __init__(self, store: Store, settings: Settings, engine: Engine | None):
        self.store, self.settings, self.engine = store, settings, engine
        self._load_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def on(self, endpoint_id: str) -> list[DeployedModelRow]:
        """The deployments of an endpoint, oldest first (DEPLOYING ones included)."""
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(DeployedModelRow)
                    .where(DeployedModelRow.endpoint_id == endpoint_id)
                    .order_by(DeployedModelRow.create_time)
                ).all()
            )

    def precheck(self, model: ModelRow) -> None:
        """Refuse at once what cannot load: missing files, or weights that do not fit in free memory."""
        folder, base = model_weights(model, self.settings)
        if self.engine is None:
            return
        loaded = {g.folder.resolve() for g in self.engine.groups.values()}
        weights = base or folder
        if weights.resolve() not in loaded:
            self.engine.check_fits(folder_bytes(weights), f"model {model.id} ({model.display_name})")

    def start(self, dep_id: str, split: dict[str, int] | None) -> None:
        """Load a DEPLOYING deployment in the background; its operation finishes when it is ready."""
        threading.Thread(
            target=self._finish, args=(dep_id, split), daemon=True, name=f"tuneforge-deploy-{dep_id}"
        ).start()

    def _finish(self, dep_id: str, split: dict[str, int] | None) -> None:
        """Load the deployment, then finish its operation (and publish it on the endpoint) or report the failure."""
        with self.store.session() as s:
            row = s.get(DeployedModelRow, dep_id)
        if row is None:
            return
        try:
            if self.engine is not None:
                self.load(row)
        except Exception as exc:  # the operation reports it; the endpoint is left as it was
            if not isinstance(exc, TuneforgeError):
                log.exception("loading deployed model %s failed", dep_id)
            code = exc.code if isinstance(exc, TuneforgeError) else "INTERNAL"
            with self.store.session() as s:
                s.delete(fetch(s, DeployedModelRow, dep_id))
            operations.finish(
                self.store, row.operation, error={"code": rpc_code(code), "message": f"deploying failed: {exc}"}
            )
            return
        op = operations.get_row(self.store, row.operation)
        garden = bool(op and (op.metadata_json or {}).get("@type", "").endswith("v1beta1.DeployOperationMetadata"))
        with self.store.session() as s:
            dep = fetch(s, DeployedModelRow, dep_id)
            dep.state = "DEPLOYED"
            ep = fetch(s, EndpointRow, dep.endpoint_id)
            if split is None:  # resumed after a restart: the requested split is gone; keep the endpoint's
                split = {**(ep.traffic_split or {})}
                split.setdefault(dep_id, 0 if split else 100)
            ep.traffic_split, ep.update_time = split, utcnow()
            s.flush()
            response: dict[str, Any]
            if garden:
                response = {
                    "@type": f"{GARDEN}.DeployResponse",
                    "endpoint": endpoint_name(ep),
                    "model": names.name("models", dep.project, dep.location, dep.model_id),
                }
            else:
                response = {"@type": f"{V1}.DeployModelResponse", "deployedModel": deployed_json(dep)}
        operations.finish(self.store, row.operation, response=response)

    def resume(self) -> None:
        """After a restart: deployments whose operation was still loading are loaded again."""
        with self.store.session() as s:
            ids = s.scalars(select(DeployedModelRow.id).where(DeployedModelRow.state == "DEPLOYING")).all()
        for dep_id in ids:
            self.start(dep_id, None)

    def load(self, row: DeployedModelRow) -> Deployment:
        """The engine's Deployment for ``row``, loading it on first use."""
        engine = self.engine
        assert engine is not None

        def deploy() -> Deployment:
            model = get_scoped(self.store, ModelRow, row.model_id, row.project, row.location, "Model", "models")
            return engine.deploy(row.id, *model_weights(model, self.settings))

        return self._once(row.id, deploy)

    def load_registered(self, key: str, model: ModelRow) -> Deployment:
        """The engine's deployment ``key`` of a registered model, loaded on first use without an endpoint (a
        fine-tuned model the OpenAI API chats with); a LoRA adapter shares its base with the others."""
        engine = self.engine
        assert engine is not None
        return self._once(key, lambda: engine.deploy(key, *model_weights(model, self.settings)))

    def load_base(self, resolved: ResolvedModel) -> Deployment:
        """The engine's deployment of a catalog model's own weights (``base:MODEL``; in dev mode its stand-in's),
        materialised and loaded on first use. It shares its weights with the LoRA adapters deployed on the same
        base."""
        key, engine = f"base:{resolved.entry.id}", self.engine
        assert engine is not None
        return self._once(key, lambda: engine.deploy(key, materialize(resolved.weights, self.settings)))

    def _once(self, key: str, deploy: Callable[[], Deployment]) -> Deployment:
        """The engine's deployment ``key``, made by ``deploy()`` if it has none (one load at a time per key)."""
        assert self.engine is not None
        dep = self.engine.get(key)
        if dep is not None:
            return dep
        with self._locks_guard:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            return self.engine.get(key) or deploy()

    def unload(self, dep_id: str) -> None:
        if self.engine is not None:
            self.engine.undeploy(dep_id)  # frees the weights when no other deployment uses them

    def target(self, endpoint: EndpointRow, choose: str | None = None) -> DeployedModelRow:
        """The deployment that serves a request to the endpoint: the one the request names (its id, display name or
        model resource name), else one by traffic split."""
        live = [d for d in self.on(endpoint.id) if d.state == "DEPLOYED"]
        if not live:
            raise FailedPrecondition(
                f"endpoint {endpoint_name(endpoint)} has no deployed model; deploy one first "
                "(Model.deploy / endpoints.deployModel / `tuneforge deploy`)"
            )
        if choose:
            for d in live:
                if choose in (d.id, d.display_name, d.model_id) or choose.endswith(f"/models/{d.model_id}"):
                    return d
        weights = [float((endpoint.traffic_split or {}).get(d.id, 0)) for d in live]
        return random.choices(live, weights=weights)[0] if sum(weights) > 0 else live[0]
