"""Endpoint resources and deployments: create, get, list, delete, deployModel, undeployModel, Model Garden deploy.

The database is the source of truth (``deployed_models``); the engine holds what is loaded. A deployed model is
loaded by its deploy operation, or on its first request after a restart (or when a tuning job deployed it from a
worker process): Vertex's documents warn that the first requests are slower.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge import storage
from tuneforge.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TuneforgeError,
)
from tuneforge.catalog.model_folder import base_model_id, folder_bytes, is_adapter
from tuneforge.catalog.weights import materialize
from tuneforge.control import operations
from tuneforge.control.db import Store, get_scoped
from tuneforge.control.paging import page
from tuneforge.control.registry import endpoint_name, model_weights, new_endpoint
from tuneforge.control.tables import DeployedModelRow, EndpointRow, ModelRow, new_id, utcnow
from tuneforge.errors import rpc_code
from tuneforge.settings import Settings
from tuneforge.wire import names
from tuneforge.wire.base import timestamp

if TYPE_CHECKING:
    from tuneforge.infer.engine import Engine

log = logging.getLogger("tuneforge.serve")

ACCELERATORS = [
    "ACCELERATOR_TYPE_UNSPECIFIED", "NVIDIA_TESLA_K80", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4", "TPU_V2", "TPU_V3", "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "TPU_V4_POD", "NVIDIA_L4",
    "TPU_V5_LITEPOD", "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB", "NVIDIA_H200_141GB", "NVIDIA_B200", "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
]
V1 = "type.googleapis.com/google.cloud.aiplatform.v1"


def deployed_json(row: DeployedModelRow) -> dict:
    """A DeployedModel with only fields of the API type (it is also returned inside strictly parsed operations)."""
    return {"id": row.id, "model": names.name("models", row.project, row.location, row.model_id),
            "modelVersionId": "1", "displayName": row.display_name, "createTime": timestamp(row.create_time),
            **(row.resources or {})}


def endpoint_json(row: EndpointRow, deployed: list[DeployedModelRow]) -> dict:
    return {"name": endpoint_name(row), "displayName": row.display_name, "description": row.description,
            "labels": row.labels or {}, "deployedModels": [deployed_json(d) for d in deployed if d.state == "DEPLOYED"],
            "trafficSplit": row.traffic_split or {}, "createTime": timestamp(row.create_time),
            "updateTime": timestamp(row.update_time)}


# -- request parsing ---------------------------------------------------------------------------------------------

def _count(value, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidArgument(f"{field} must be a whole number, got {value!r}")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidArgument(f"{field} must be a whole number from {low} to {high}, got {value!r}")
    return number


def _accelerator(value, field: str) -> str:
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < len(ACCELERATORS):
        name = ACCELERATORS[int(value)]
    elif isinstance(value, str) and value in ACCELERATORS:
        name = value
    else:
        raise InvalidArgument(f"{field} {value!r} is not an accelerator type; use one of "
                              f"{', '.join(ACCELERATORS[1:])} (or its number)")
    if name.startswith("TPU"):
        raise InvalidArgument(f"{field} {name}: tuneforge serves on NVIDIA GPUs or the CPU, not TPUs; choose an "
                              "NVIDIA accelerator type or none")
    return name


def parse_resources(spec: dict, path: str) -> dict:
    """``dedicatedResources`` / ``automaticResources`` as requested, validated and normalised for the record.

    The spec is recorded on the deployed model; the model is served on this server's own hardware (one replica).
    """
    if "dedicatedResources" in spec or "dedicated_resources" in spec:
        key = "dedicatedResources" if "dedicatedResources" in spec else "dedicated_resources"
        ded = spec[key]
        if not isinstance(ded, dict):
            raise InvalidArgument(f"{path}.{key} must be an object")
        out: dict = {}
        machine = ded.get("machineSpec", ded.get("machine_spec"))
        if machine is not None:
            if not isinstance(machine, dict):
                raise InvalidArgument(f"{path}.{key}.machineSpec must be an object")
            ms: dict = {}
            mtype = machine.get("machineType", machine.get("machine_type"))
            if mtype is not None:
                if not isinstance(mtype, str) or not mtype.strip():
                    raise InvalidArgument(f"{path}.{key}.machineSpec.machineType must be a machine type name "
                                          "such as g2-standard-12")
                ms["machineType"] = mtype
            atype = machine.get("acceleratorType", machine.get("accelerator_type"))
            count = _count(machine.get("acceleratorCount", machine.get("accelerator_count")),
                           f"{path}.{key}.machineSpec.acceleratorCount", 0, 0, 16)
            if atype is not None:
                name = _accelerator(atype, f"{path}.{key}.machineSpec.acceleratorType")
                if name != ACCELERATORS[0]:
                    ms["acceleratorType"] = name
                    ms["acceleratorCount"] = count or 1
            elif count:
                raise InvalidArgument(f"{path}.{key}.machineSpec.acceleratorCount is {count} but no acceleratorType "
                                      "is given; name the accelerator (e.g. NVIDIA_L4)")
            out["machineSpec"] = ms
        low = _count(ded.get("minReplicaCount"), f"{path}.{key}.minReplicaCount", 1, 1, 1000)
        high = _count(ded.get("maxReplicaCount"), f"{path}.{key}.maxReplicaCount", low, 1, 1000)
        if high < low:
            raise InvalidArgument(f"{path}.{key}.maxReplicaCount ({high}) is below minReplicaCount ({low})")
        out.update(minReplicaCount=low, maxReplicaCount=high)
        return {"dedicatedResources": out}
    auto = spec.get("automaticResources", spec.get("automatic_resources")) or {}
    if not isinstance(auto, dict):
        raise InvalidArgument(f"{path}.automaticResources must be an object")
    low = _count(auto.get("minReplicaCount"), f"{path}.automaticResources.minReplicaCount", 1, 1, 1000)
    high = _count(auto.get("maxReplicaCount"), f"{path}.automaticResources.maxReplicaCount", low, 1, 1000)
    return {"automaticResources": {"minReplicaCount": low, "maxReplicaCount": max(low, high)}}


def _model_id(ref: object, project: str, location: str, field: str) -> str:
    parent = names.parent(project, location)
    if not isinstance(ref, str) or "models/" not in ref:
        raise InvalidArgument(f"{field} must name a model, like {parent}/models/ID")
    model_id = names.resource_id(ref, "models", project, location)
    if model_id is None:
        raise InvalidArgument(f"{field} {ref} is not in {parent}")
    return model_id


def _traffic(split, existing: list[str], new_id_: str | None, field: str) -> dict:
    """The endpoint's new trafficSplit: as given ("0" is the model being deployed), else all to the new model."""
    if split is None or split == {}:
        ids = ([new_id_] if new_id_ else []) + [i for i in existing if i != new_id_]
        if new_id_:
            return {i: (100 if i == new_id_ else 0) for i in ids}
        return {i: (100 if n == 0 else 0) for n, i in enumerate(ids)}
    if not isinstance(split, dict):
        raise InvalidArgument(f"{field} must map deployed model ids to percentages")
    out = {}
    for key, value in split.items():
        target = new_id_ if key == "0" and new_id_ else key
        if target not in existing and target != new_id_:
            raise InvalidArgument(f"{field} names deployed model {key!r}, which is not on this endpoint")
        out[target] = _count(value, f"{field}[{key}]", 0, 0, 100)
    if sum(out.values()) != 100:
        raise InvalidArgument(f"{field} percentages add up to {sum(out.values())}; they must add up to 100")
    return out


# -- the service -------------------------------------------------------------------------------------------------

class EndpointService:
    def __init__(self, store: Store, settings: Settings, engine: Engine | None = None):
        self.store, self.settings, self.engine = store, settings, engine
        self._load_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # endpoints
    def create(self, project: str, location: str, body: dict, version: str) -> dict:
        display = body.get("displayName") or body.get("display_name")
        if not isinstance(display, str) or not display.strip():
            raise InvalidArgument("displayName is required for an endpoint")
        labels = body.get("labels") or {}
        if not isinstance(labels, dict):
            raise InvalidArgument("labels must be an object of strings")
        with self.store.session() as s:
            row = new_endpoint(s, project, location, display, body.get("description") or "", labels)
        api = "v1beta1" if version == "v1beta1" else "v1"
        response = {"@type": f"type.googleapis.com/google.cloud.aiplatform.{api}.Endpoint", **endpoint_json(row, [])}
        return operations.record_done(self.store, endpoint_name(row), response,
                                      f"type.googleapis.com/google.cloud.aiplatform.{api}.CreateEndpointOperationMetadata")

    def get(self, project: str, location: str, endpoint_id: str) -> EndpointRow:
        return get_scoped(self.store, EndpointRow, endpoint_id, project, location, "Endpoint", "endpoints")

    def deployed(self, endpoint_id: str) -> list[DeployedModelRow]:
        with self.store.session() as s:
            return list(s.scalars(select(DeployedModelRow).where(DeployedModelRow.endpoint_id == endpoint_id)
                                  .order_by(DeployedModelRow.create_time)).all())

    def resource(self, project: str, location: str, endpoint_id: str) -> dict:
        return endpoint_json(self.get(project, location, endpoint_id), self.deployed(endpoint_id))

    def list(self, project: str, location: str, page_size: int | None, page_token: str | None):
        q = (select(EndpointRow).where(EndpointRow.project == project, EndpointRow.location == location)
             .order_by(EndpointRow.create_time.desc(), EndpointRow.id.desc()))
        with self.store.session() as s:
            rows, token = page(s, q, page_size, page_token)
        return [endpoint_json(r, self.deployed(r.id)) for r in rows], token

    def delete(self, project: str, location: str, endpoint_id: str) -> dict:
        row = self.get(project, location, endpoint_id)
        deployed = self.deployed(endpoint_id)
        if deployed:
            raise FailedPrecondition(f"endpoint {endpoint_id} still has {len(deployed)} deployed model(s); "
                                     "undeploy them first (endpoint.delete(force=True) does)")
        with self.store.session() as s:
            s.delete(s.get(EndpointRow, endpoint_id))
        return operations.record_done(self.store, endpoint_name(row), {"@type": "type.googleapis.com/google.protobuf.Empty"},
                                      f"{V1}.DeleteOperationMetadata")

    # deployModel / undeployModel
    def deploy_model(self, project: str, location: str, endpoint_id: str, body: dict) -> dict:
        endpoint = self.get(project, location, endpoint_id)
        spec = body.get("deployedModel", body.get("deployed_model"))
        if not isinstance(spec, dict):
            raise InvalidArgument('deployedModel is required: {"deployedModel": {"model": "projects/…/models/ID"}}')
        model_id = _model_id(spec.get("model"), project, location, "deployedModel.model")
        model = get_scoped(self.store, ModelRow, model_id, project, location, "Model", "models")
        resources = parse_resources(spec, "deployedModel")
        display = spec.get("displayName") or model.display_name
        if not isinstance(display, str):
            raise InvalidArgument("deployedModel.displayName must be a string")
        dep_id = new_id()
        existing = [d.id for d in self.deployed(endpoint_id) if d.state == "DEPLOYED"]
        split = _traffic(body.get("trafficSplit", body.get("traffic_split")), existing, dep_id, "trafficSplit")
        self._precheck(model)
        op = operations.record_pending(self.store, endpoint_name(endpoint), f"{V1}.DeployModelOperationMetadata")
        with self.store.session() as s:
            s.add(DeployedModelRow(id=dep_id, endpoint_id=endpoint_id, model_id=model_id, project=project,
                                   location=location, display_name=display, resources=resources, state="DEPLOYING",
                                   operation=op, create_time=utcnow()))
        self._start_load(dep_id, split)
        return operations.get(self.store, op)

    def undeploy_model(self, project: str, location: str, endpoint_id: str, body: dict) -> dict:
        endpoint = self.get(project, location, endpoint_id)
        dep_id = body.get("deployedModelId", body.get("deployed_model_id"))
        if not isinstance(dep_id, str) or not dep_id:
            raise InvalidArgument('deployedModelId is required: {"deployedModelId": "ID"}')
        deployed = {d.id: d for d in self.deployed(endpoint_id)}
        if dep_id not in deployed:
            raise NotFound(f"deployed model {dep_id} is not on endpoint {endpoint_name(endpoint)}")
        remaining = [i for i in deployed if i != dep_id and deployed[i].state == "DEPLOYED"]
        split = body.get("trafficSplit", body.get("traffic_split"))
        if split:
            split = {k: v for k, v in split.items() if k != dep_id}
        new_split = _traffic(split or None, remaining, None, "trafficSplit") if remaining else {}
        if self.engine is not None:
            self.engine.undeploy(dep_id)  # frees the weights when no other deployment uses them
        with self.store.session() as s:
            s.delete(s.get(DeployedModelRow, dep_id))
            ep = s.get(EndpointRow, endpoint_id)
            ep.traffic_split, ep.update_time = new_split, utcnow()
        return operations.record_done(self.store, endpoint_name(endpoint), {"@type": f"{V1}.UndeployModelResponse"},
                                      f"{V1}.UndeployModelOperationMetadata")

    # Model Garden: register custom weights, create an endpoint, deploy
    def garden_deploy(self, project: str, location: str, body: dict) -> dict:
        custom = body.get("customModel", body.get("custom_model"))
        if not isinstance(custom, dict) or not isinstance(custom.get("gcsUri", custom.get("gcs_uri")), str):
            raise InvalidArgument('customModel.gcsUri is required: {"customModel": {"gcsUri": "gs://…/final"}}; '
                                  "publisher models are not deployable here (tune one, then deploy the tuned model)")
        uri = storage.check_client_uri(custom.get("gcsUri", custom.get("gcs_uri")), "customModel.gcsUri", self.settings)
        folder = materialize(uri, self.settings)
        model_cfg = body.get("modelConfig") or {}
        endpoint_cfg = body.get("endpointConfig") or {}
        deploy_cfg = body.get("deployConfig") or {}
        if not all(isinstance(x, dict) for x in (model_cfg, endpoint_cfg, deploy_cfg)):
            raise InvalidArgument("modelConfig, endpointConfig and deployConfig must be objects")
        resources = parse_resources(deploy_cfg, "deployConfig")
        stem = uri.rstrip("/").split("/")[-1] or "model"
        display = model_cfg.get("modelDisplayName") or f"{stem}-{new_id()[-6:]}"
        now = utcnow()
        model = ModelRow(id=new_id(), project=project, location=location, version=1, display_name=display,
                         description=f"Custom weights from {uri}", artifact_uri=uri, labels={},
                         base_model=base_model_id(folder), kind="lora" if is_adapter(folder) else "full", create_time=now,
                         update_time=now)
        self._precheck(model)
        with self.store.session() as s:
            s.add(model)
            endpoint = new_endpoint(s, project, location, endpoint_cfg.get("endpointDisplayName") or f"{display}_endpoint",
                                     "", {})
        op = operations.record_pending(self.store, names.parent(project, location), "type.googleapis.com/google.cloud.aiplatform.v1beta1.DeployOperationMetadata")
        dep_id = new_id()
        with self.store.session() as s:
            s.add(DeployedModelRow(id=dep_id, endpoint_id=endpoint.id, model_id=model.id, project=project,
                                   location=location, display_name=display, resources=resources, state="DEPLOYING",
                                   operation=op, create_time=utcnow()))
        self._start_load(dep_id, {dep_id: 100})
        return operations.get(self.store, op)

    # loading
    def _precheck(self, model: ModelRow) -> None:
        """Refuse at once what cannot load: missing files, or weights that do not fit in free memory."""
        folder, base = model_weights(model, self.settings)
        if self.engine is None:
            return
        loaded = {g.folder.resolve() for g in self.engine.groups.values()}
        weights = base or folder
        if weights.resolve() not in loaded:
            self.engine.check_fits(folder_bytes(weights), f"model {model.id} ({model.display_name})")

    def _start_load(self, dep_id: str, split: dict | None) -> None:
        threading.Thread(target=self._finish_deploy, args=(dep_id, split), daemon=True,
                         name=f"tuneforge-deploy-{dep_id}").start()

    def _finish_deploy(self, dep_id: str, split: dict | None) -> None:
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
                s.delete(s.get(DeployedModelRow, dep_id))
            operations.finish(self.store, row.operation, error={"code": rpc_code(code),
                                                                "message": f"deploying failed: {exc}"})
            return
        op = operations.get_row(self.store, row.operation)
        garden = bool(op and (op.metadata_json or {}).get("@type", "").endswith("v1beta1.DeployOperationMetadata"))
        with self.store.session() as s:
            dep = s.get(DeployedModelRow, dep_id)
            dep.state = "DEPLOYED"
            ep = s.get(EndpointRow, dep.endpoint_id)
            if split is None:  # resumed after a restart: the requested split is gone; keep the endpoint's
                split = {**(ep.traffic_split or {})}
                split.setdefault(dep_id, 0 if split else 100)
            ep.traffic_split, ep.update_time = split, utcnow()
            s.flush()
            if garden:
                response = {"@type": "type.googleapis.com/google.cloud.aiplatform.v1beta1.DeployResponse",
                            "endpoint": endpoint_name(ep),
                            "model": names.name("models", dep.project, dep.location, dep.model_id)}
            else:
                response = {"@type": f"{V1}.DeployModelResponse", "deployedModel": deployed_json(dep)}
        operations.finish(self.store, row.operation, response=response)

    def resume(self) -> None:
        """After a restart: deployments whose operation was still loading are loaded again."""
        with self.store.session() as s:
            ids = s.scalars(select(DeployedModelRow.id).where(DeployedModelRow.state == "DEPLOYING")).all()
        for dep_id in ids:
            self._start_load(dep_id, None)

    def load(self, row: DeployedModelRow):
        """The engine's Deployment for ``row``, loading it on first use (one load at a time per deployment)."""
        dep = self.engine.get(row.id)
        if dep is not None:
            return dep
        with self._locks_guard:
            lock = self._load_locks.setdefault(row.id, threading.Lock())
        with lock:
            dep = self.engine.get(row.id)
            if dep is None:
                model = get_scoped(self.store, ModelRow, row.model_id, row.project, row.location, "Model", "models")
                folder, base = model_weights(model, self.settings)
                dep = self.engine.deploy(row.id, folder, base)
            return dep

    # serving
    def target(self, project: str, location: str, endpoint_id: str, choose: str | None = None):
        """(deployed row, model row) that serves a request to the endpoint: by traffic split, or the deployed
        model the request names (its id, display name or model resource name)."""
        endpoint = self.get(project, location, endpoint_id)
        live = [d for d in self.deployed(endpoint_id) if d.state == "DEPLOYED"]
        if not live:
            raise FailedPrecondition(f"endpoint {endpoint_name(endpoint)} has no deployed model; deploy one first "
                                     "(Model.deploy / endpoints.deployModel / `tuneforge deploy`)")
        pick = None
        if choose:
            for d in live:
                if choose in (d.id, d.display_name, d.model_id) or choose.endswith(f"/models/{d.model_id}"):
                    pick = d
                    break
        if pick is None:
            weights = [float((endpoint.traffic_split or {}).get(d.id, 0)) for d in live]
            pick = random.choices(live, weights=weights)[0] if sum(weights) > 0 else live[0]
        return pick
