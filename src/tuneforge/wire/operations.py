"""google.longrunning.Operation: what deploy, undeploy, create and delete calls answer; polled until done."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.wire.base import WireModel
from tuneforge.wire.status import Status


class Operation(WireModel):
    WIRE_NAME = "Operation"
    name: str
    done: bool = False
    metadata: dict[str, Any] | None = Field(
        default=None, description="With @type, e.g. google.cloud.aiplatform.v1.DeployModelOperationMetadata."
    )
    response: dict[str, Any] | None = Field(default=None, description="With @type (when done without error).")
    error: Status | None = None
