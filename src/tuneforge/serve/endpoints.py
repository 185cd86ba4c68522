"""Endpoint resources: create, get, list, delete (deploying models onto them comes with the serving engine)."""

from __future__ import annotations

from sqlalchemy import select

from tuneforge.errors import FailedPrecondition, InvalidArgument
from tuneforge.jobs import operations
from tuneforge.jobs.db import Store, get_scoped
from tuneforge.jobs.paging import page
from tuneforge.jobs.service import _ts, new_id
from tuneforge.jobs.tables import EndpointRow, utcnow


def endpoint_name(row: EndpointRow) -> str:
    return f"projects/{row.project}/locations/{row.location}/endpoints/{row.id}"


def endpoint_json(row: EndpointRow) -> dict:
    return {"name": endpoint_name(row), "displayName": row.display_name, "description": row.description,
            "labels": row.labels or {}, "deployedModels": row.deployed_models or [], "trafficSplit": row.traffic_split or {},
            "createTime": _ts(row.create_time), "updateTime": _ts(row.update_time)}


class EndpointService:
    def __init__(self, store: Store):
        self.store = store

    def create(self, project: str, location: str, body: dict, version: str) -> dict:
        display = body.get("displayName") or body.get("display_name")
        if not isinstance(display, str) or not display.strip():
            raise InvalidArgument("displayName is required for an endpoint")
        labels = body.get("labels") or {}
        if not isinstance(labels, dict):
            raise InvalidArgument("labels must be an object of strings")
        now = utcnow()
        row = EndpointRow(id=new_id(), project=project, location=location, display_name=display,
                          description=body.get("description") or "", labels=labels, deployed_models=[], traffic_split={},
                          create_time=now, update_time=now)
        with self.store.session() as s:
            s.add(row)
        api = "v1beta1" if version == "v1beta1" else "v1"
        response = {"@type": f"type.googleapis.com/google.cloud.aiplatform.{api}.Endpoint", **endpoint_json(row)}
        return operations.record_done(self.store, endpoint_name(row), response,
                                      f"type.googleapis.com/google.cloud.aiplatform.{api}.CreateEndpointOperationMetadata")

    def get(self, project: str, location: str, endpoint_id: str) -> EndpointRow:
        return get_scoped(self.store, EndpointRow, endpoint_id, project, location, "Endpoint", "endpoints")

    def list(self, project: str, location: str, page_size: int | None, page_token: str | None):
        q = (select(EndpointRow).where(EndpointRow.project == project, EndpointRow.location == location)
             .order_by(EndpointRow.create_time.desc(), EndpointRow.id.desc()))
        with self.store.session() as s:
            return page(s, q, page_size, page_token)

    def delete(self, project: str, location: str, endpoint_id: str) -> dict:
        row = self.get(project, location, endpoint_id)
        if row.deployed_models:
            raise FailedPrecondition(f"endpoint {endpoint_id} still has {len(row.deployed_models)} deployed model(s); "
                                     "undeploy them first (endpoint.delete(force=True) does)")
        with self.store.session() as s:
            s.delete(s.get(EndpointRow, endpoint_id))
        return operations.record_done(self.store, endpoint_name(row), {"@type": "type.googleapis.com/google.protobuf.Empty"},
                                      "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata")
