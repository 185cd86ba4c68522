"""Endpoint resources: create, get, list, delete, deployModel, undeployModel, and Model Garden's deploy.

Deploying records the deployment and starts loading it (``control/deployments.py``); the operation finishes when the
model is ready. The resources a client asks for are validated and recorded; tuneforge serves every deployed model
on its own hardware, one replica.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge import storage
from tuneforge.catalog import load_catalog
from tuneforge.catalog.model_folder import base_model_id, is_adapter
from tuneforge.catalog.weights import materialize
from tuneforge.control import operations
from tuneforge.control.access import BucketPolicy
from tuneforge.control.base_models import publisher_model_id
from tuneforge.control.db import Store, fetch, get_scoped
from tuneforge.control.deployments import GARDEN, V1, Deployments, deployed_json
from tuneforge.control.paging import list_page
from tuneforge.control.registry import endpoint_name, new_endpoint, record_deployment
from tuneforge.control.tables import DeployedModelRow, EndpointRow, ModelRow, new_id, utcnow
from tuneforge.errors import FailedPrecondition, InvalidArgument, NotFound
from tuneforge.settings import Settings
from tuneforge.wire import names
from tuneforge.wire.base import dump, timestamp
from tuneforge.wire.endpoints import (
    AcceleratorType,
    AutomaticResources,
    DedicatedResources,
    DeployModelRequest,
    DeployRequest,
    Endpoint,
    ListEndpointsResponse,
    UndeployModelRequest,
)
from tuneforge.wire.operations import Operation

if TYPE_CHECKING:
    from tuneforge.infer.engine import Deployment, Engine


def endpoint_resource(row: EndpointRow, deployed: list[DeployedModelRow]) -> Endpoint:
    return Endpoint.model_validate(
        {
            "name": endpoint_name(row),
            "displayName": row.display_name,
            "description": row.description,
            "labels": row.labels or {},
            "deployedModels": [deployed_json(d) for d in deployed if d.state == "DEPLOYED"],
            "trafficSplit": row.traffic_split or {},
            "createTime": timestamp(row.create_time),
            "updateTime": timestamp(row.update_time),
        }
    )


# -- request checks ----------------------------------------------------------------------------------------------


def resources(dedicated: DedicatedResources | None, automatic: AutomaticResources | None, path: str) -> dict[str, Any]:
    """The resources a deployment asks for, checked and normalised for the record."""
    if dedicated is None:
        auto = automatic or AutomaticResources()
        low = auto.min_replica_count or 1
        return {
            "automaticResources": {"minReplicaCount": low, "maxReplicaCount": max(low, auto.max_replica_count or low)}
        }
    key = f"{path}.dedicatedResources"
    out: dict[str, Any] = {}
    if dedicated.machine_spec is not None:
        machine, spec = dedicated.machine_spec, dict[str, Any]()
        if machine.machine_type is not None:
            if not machine.machine_type.strip():
                raise InvalidArgument(
                    f"{key}.machineSpec.machineType must be a machine type name such as g2-standard-12"
                )
            spec["machineType"] = machine.machine_type
        count = machine.accelerator_count or 0
        accelerator = machine.accelerator_type
        if accelerator is not None and accelerator.value.startswith("TPU"):
            raise InvalidArgument(
                f"{key}.machineSpec.acceleratorType {accelerator.value}: tuneforge serves on NVIDIA "
                "GPUs or the CPU, not TPUs; choose an NVIDIA accelerator type or none"
            )
        if accelerator is not None and accelerator != AcceleratorType.ACCELERATOR_TYPE_UNSPECIFIED:
            spec.update(acceleratorType=accelerator.value, acceleratorCount=count or 1)
        elif accelerator is None and count:
            raise InvalidArgument(
                f"{key}.machineSpec.acceleratorCount is {count} but no acceleratorType is given; "
                "name the accelerator (e.g. NVIDIA_L4)"
            )
        out["machineSpec"] = spec
    low = dedicated.min_replica_count or 1
    high = dedicated.max_replica_count or low
    if high < low:
        raise InvalidArgument(f"{key}.maxReplicaCount ({high}) is below minReplicaCount ({low})")
    out.update(minReplicaCount=low, maxReplicaCount=high)
    return {"dedicatedResources": out}


def _model_id(ref: str | None, project: str, location: str, field: str) -> str:
    parent = names.parent(project, location)
    if not ref or "models/" not in ref:
        raise InvalidArgument(f"{field} must name a model, like {parent}/models/ID")
    model_id = names.resource_id(ref, "models", project, location)
    if model_id is None:
        raise InvalidArgument(f"{field} {ref} is not in {parent}")
    return model_id


def traffic(split: dict[str, int] | None, existing: list[str], new: str | None, field: str) -> dict[str, int]:
    """The endpoint's new trafficSplit: as given ("0" is the model being deployed), else all to the new model."""
    if not split:
        ids = ([new] if new else []) + [i for i in existing if i != new]
        if new:
            return {i: (100 if i == new else 0) for i in ids}
        return {i: (100 if n == 0 else 0) for n, i in enumerate(ids)}
    out = {}
    for key, value in split.items():
        target = new if key == "0" and new else key
        if target not in existing and target != new:
            raise InvalidArgument(f"{field} names deployed model {key!r}, which is not on this endpoint")
        out[target] = value
    if sum(out.values()) != 100:
        raise InvalidArgument(f"{field} percentages add up to {sum(out.values())}; they must add up to 100")
    return out


# -- the service -------------------------------------------------------------------------------------------------


class EndpointService:
    def __init__(self, store: Store, settings: Settings, engine: Engine | None = None):
        self.store, self.settings = store, settings
        self.deployments = Deployments(store, settings, engine)
        self.buckets = BucketPolicy(store, settings)

    def create(self, project: str, location: str, endpoint: Endpoint, version: str) -> Operation:
        if not endpoint.display_name or not endpoint.display_name.strip():
            raise InvalidArgument("displayName is required for an endpoint")
        with self.store.session() as s:
            row = new_endpoint(s, project, location, endpoint.display_name, endpoint.description or "", endpoint.labels)
        api = f"type.googleapis.com/google.cloud.aiplatform.{'v1beta1' if version == 'v1beta1' else 'v1'}"
        response = {"@type": f"{api}.Endpoint", **dump(endpoint_resource(row, []))}
        return operations.record_done(
            self.store, endpoint_name(row), response, f"{api}.CreateEndpointOperationMetadata"
        )

    def row(self, project: str, location: str, endpoint_id: str) -> EndpointRow:
        return get_scoped(self.store, EndpointRow, endpoint_id, project, location, "Endpoint", "endpoints")

    def get(self, project: str, location: str, endpoint_id: str) -> Endpoint:
        return endpoint_resource(self.row(project, location, endpoint_id), self.deployments.on(endpoint_id))

    def list(self, project: str, location: str, page_size: int | None, page_token: str | None) -> ListEndpointsResponse:
        with self.store.session() as s:
            rows, token = list_page(s, EndpointRow, project, location, page_size, page_token)
        return ListEndpointsResponse(
            endpoints=[endpoint_resource(r, self.deployments.on(r.id)) for r in rows], next_page_token=token or None
        )

    def delete(self, project: str, location: str, endpoint_id: str) -> Operation:
        row = self.row(project, location, endpoint_id)
        deployed = self.deployments.on(endpoint_id)
        if deployed:
            raise FailedPrecondition(
                f"endpoint {endpoint_id} still has {len(deployed)} deployed model(s); "
                "undeploy them first (endpoint.delete(force=True) does)"
            )
        with self.store.session() as s:
            s.delete(fetch(s, EndpointRow, endpoint_id))
        return operations.record_done(
            self.store,
            endpoint_name(row),
            {"@type": "type.googleapis.com/google.protobuf.Empty"},
            f"{V1}.DeleteOperationMetadata",
        )

    def deploy_model(self, project: str, location: str, endpoint_id: str, req: DeployModelRequest) -> Operation:
        endpoint = self.row(project, location, endpoint_id)
        spec = req.deployed_model
        if spec is None:
            raise InvalidArgument('deployedModel is required: {"deployedModel": {"model": "projects/…/models/ID"}}')
        model_id = _model_id(spec.model, project, location, "deployedModel.model")
        model = get_scoped(self.store, ModelRow, model_id, project, location, "Model", "models")
        recorded = resources(spec.dedicated_resources, spec.automatic_resources, "deployedModel")
        dep_id = new_id()
        existing = [d.id for d in self.deployments.on(endpoint_id) if d.state == "DEPLOYED"]
        split = traffic(req.traffic_split, existing, dep_id, "trafficSplit")
        self.deployments.precheck(model)
        op = operations.record_pending(self.store, endpoint_name(endpoint), f"{V1}.DeployModelOperationMetadata")
        self._record(
            dep_id, endpoint_id, model_id, project, location, spec.display_name or model.display_name, recorded, op
        )
        self.deployments.start(dep_id, split)
        return operations.get(self.store, op)

    def _record(
        self,
        dep_id: str,
        endpoint_id: str,
        model_id: str,
        project: str,
        location: str,
        display: str,
        recorded: dict[str, Any],
        op: str,
    ) -> None:
        with self.store.session() as s:
            record_deployment(s, dep_id, endpoint_id, model_id, project, location, display, recorded, op)

    def undeploy_model(self, project: str, location: str, endpoint_id: str, req: UndeployModelRequest) -> Operation:
        endpoint = self.row(project, location, endpoint_id)
        dep_id = req.deployed_model_id
        if not dep_id:
            raise InvalidArgument('deployedModelId is required: {"deployedModelId": "ID"}')
        deployed = {d.id: d for d in self.deployments.on(endpoint_id)}
        if dep_id not in deployed:
            raise NotFound(f"deployed model {dep_id} is not on endpoint {endpoint_name(endpoint)}")
        remaining = [i for i in deployed if i != dep_id and deployed[i].state == "DEPLOYED"]
        split = {k: v for k, v in (req.traffic_split or {}).items() if k != dep_id}
        new_split = traffic(split or None, remaining, None, "trafficSplit") if remaining else {}
        self.deployments.unload(dep_id)
        with self.store.session() as s:
            s.delete(fetch(s, DeployedModelRow, dep_id))
            ep = fetch(s, EndpointRow, endpoint_id)
            ep.traffic_split, ep.update_time = new_split, utcnow()
        return operations.record_done(
            self.store,
            endpoint_name(endpoint),
            {"@type": f"{V1}.UndeployModelResponse"},
            f"{V1}.UndeployModelOperationMetadata",
        )

    def garden_deploy(self, project: str, location: str, req: DeployRequest) -> Operation:
        """Model Garden ``CustomModel(gcs_uri).deploy(...)``: register the weights, create an endpoint, deploy."""
        if req.custom_model is None or not req.custom_model.gcs_uri:
            raise InvalidArgument(
                'customModel.gcsUri is required: {"customModel": {"gcsUri": "gs://…/final"}}; '
                "publisher models are not deployable here (tune one, then deploy the tuned model)"
            )
        access = self.buckets.for_project(project)
        uri = storage.check_client_uri(req.custom_model.gcs_uri, "customModel.gcsUri", self.settings, access=access)
        folder = materialize(uri, self.settings)
        deploy = req.deploy_config
        recorded = resources(deploy.dedicated_resources if deploy else None, None, "deployConfig")
        stem = uri.rstrip("/").split("/")[-1] or "model"
        display = (req.model_config_.model_display_name if req.model_config_ else None) or f"{stem}-{new_id()[-6:]}"
        now = utcnow()
        model = ModelRow(
            id=new_id(),
            project=project,
            location=location,
            version=1,
            display_name=display,
            description=f"Custom weights from {uri}",
            artifact_uri=uri,
            labels={},
            base_model=base_model_id(folder),
            kind="lora" if is_adapter(folder) else "full",
            create_time=now,
            update_time=now,
        )
        self.deployments.precheck(model)
        endpoint_display = req.endpoint_config.endpoint_display_name if req.endpoint_config else None
        with self.store.session() as s:
            s.add(model)
            endpoint = new_endpoint(s, project, location, endpoint_display or f"{display}_endpoint", "", {})
        op = operations.record_pending(self.store, names.parent(project, location), f"{GARDEN}.DeployOperationMetadata")
        dep_id = new_id()
        self._record(dep_id, endpoint.id, model.id, project, location, display, recorded, op)
        self.deployments.start(dep_id, {dep_id: 100})
        return operations.get(self.store, op)

    # serving
    def serving(
        self, project: str, location: str, endpoint_id: str, choose: str | None = None
    ) -> tuple[DeployedModelRow, Deployment]:
        """The deployment that answers a request, loaded (the first request after a restart loads it)."""
        row = self.deployments.target(self.row(project, location, endpoint_id), choose)
        return row, self.deployments.load(row)

    def base_serving(self, publisher: str, model: str) -> Deployment:
        """The deployment of ``publishers/{publisher}/models/{model}``: the catalog model's own weights
        (in dev mode its stand-in's), loaded on first use, as Vertex serves a publisher model without an endpoint."""
        catalog = load_catalog(self.settings)
        model_id = publisher_model_id(catalog, publisher, model)
        resolved = catalog.resolve(model_id, settings=self.settings)
        return self.deployments.load_base(resolved)

    def resume(self) -> None:
        self.deployments.resume()
