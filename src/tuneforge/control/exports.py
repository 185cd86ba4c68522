"""Vertex's ``models.export`` for tuneforge's one export format family: a registered model of a Llama-family base as
a GGUF file (``gguf-f16``, ``gguf-q8_0``) with an Ollama Modelfile, written under the request's
``outputConfig.artifactDestination.outputUriPrefix`` (``<prefix>/model-<id>/<format>/<time>/``, Vertex's layout).
The write runs in the background behind a long-running operation, whose metadata says where the files went
(``outputInfo.artifactOutputUri``, what the SDK's ``Model.export_model`` returns); an export a restart interrupted
ends as ABORTED."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from tuneforge import storage
from tuneforge.catalog import Catalog, load_catalog
from tuneforge.catalog.gguf_export import EXPORTABLE, export_gguf
from tuneforge.control import operations
from tuneforge.control.access import BucketPolicy
from tuneforge.control.db import Store, get_scoped
from tuneforge.control.registry import model_name, model_weights
from tuneforge.control.tables import ModelRow, OperationRow
from tuneforge.errors import FailedPrecondition, InvalidArgument, TuneforgeError, rpc_code
from tuneforge.settings import Settings
from tuneforge.wire.models import ExportFormat, ExportModelRequest
from tuneforge.wire.operations import Operation

log = logging.getLogger(__name__)
V1 = "type.googleapis.com/google.cloud.aiplatform.v1"
METADATA = f"{V1}.ExportModelOperationMetadata"
FORMATS = {"gguf-f16": "f16", "gguf-q8_0": "q8_0"}
FIELD = "outputConfig.artifactDestination.outputUriPrefix"


def export_formats(row: ModelRow, catalog: Catalog) -> list[ExportFormat]:
    """``Model.supportedExportFormats``: the GGUF formats for a model of a Llama-family base, else none."""
    if catalog.model_type(row.base_model) != EXPORTABLE:
        return []
    return [ExportFormat(id=f, exportable_contents=["ARTIFACT"]) for f in FORMATS]


class ExportService:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.buckets = BucketPolicy(store, settings)

    def export(self, project: str, location: str, model_id: str, request: ExportModelRequest) -> Operation:
        """Check the request, start the write, answer the operation that reports it."""
        model_id = model_id.split("@", 1)[0]
        row = get_scoped(self.store, ModelRow, model_id, project, location, "Model", "models")
        config = request.output_config
        formats = [f.id for f in export_formats(row, load_catalog(self.settings))]
        if not formats:
            raise FailedPrecondition(
                f"model {model_id} (base {row.base_model}) has no export format: GGUF export "
                "writes models of Llama-family bases"
            )
        if config is None or config.export_format_id not in formats:
            got = config.export_format_id if config else None
            raise InvalidArgument(f"outputConfig.exportFormatId must be one of {', '.join(formats)}; got {got!r}")
        if config.image_destination is not None or config.artifact_destination is None:
            raise InvalidArgument(f"{FIELD} is required: GGUF files are artifacts (no container image is built)")
        prefix = config.artifact_destination.output_uri_prefix.rstrip("/")
        out_uri = f"{prefix}/model-{model_id}/{config.export_format_id}/{time.strftime('%Y-%m-%dT%H%M%S')}"
        access = self.buckets.for_project(project)
        storage.check_client_uri(out_uri, FIELD, self.settings, access=access, write=True)  # where it will write
        extra = {"outputInfo": {"artifactOutputUri": out_uri}}
        name = operations.record_pending(self.store, model_name(row), METADATA, extra)
        args = (row, FORMATS[config.export_format_id], out_uri, name)
        threading.Thread(target=self._write, args=args, daemon=True, name=f"tuneforge-export-{model_id}").start()
        return operations.get(self.store, name)

    def _write(self, row: ModelRow, quantization: str, out_uri: str, name: str) -> None:
        try:
            folder, base = model_weights(row, self.settings)
            out = storage.output_dir(out_uri, self.settings)
            export_gguf(folder, out, quantization, base_dir=base)
            storage.publish(out, out_uri, self.settings)
        except Exception as exc:  # the operation reports it
            if not isinstance(exc, TuneforgeError):
                log.exception("exporting model %s failed", row.id)
            code = exc.code if isinstance(exc, TuneforgeError) else "INTERNAL"
            error = {
                "code": rpc_code(code),
                "message": f"export failed: {storage.client_text(str(exc), self.settings)}",
            }
            operations.finish(self.store, name, error=error)
            return
        operations.finish(self.store, name, response={"@type": f"{V1}.ExportModelResponse"})

    def recover(self) -> None:
        """Exports a restart interrupted end as ABORTED (their thread is gone); the client may export again."""
        with self.store.session() as s:
            pending = s.scalars(select(OperationRow).where(OperationRow.done.is_(False))).all()
        message = "the server restarted during the export; export the model again"
        for row in pending:
            if (row.metadata_json or {}).get("@type") == METADATA:
                operations.finish(self.store, row.name, error={"code": rpc_code("ABORTED"), "message": message})
