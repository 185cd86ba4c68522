"""Air-gapped use of the official SDK's pipeline flows (contract §1).

Before it calls tuneforge, ``PipelineJob`` (behind ``tune_model`` and ``distill_from``) does two things on its own:

1. It downloads the pipeline template from ``https://us-kfp.pkg.dev/ml-pipeline/...`` with ``urllib``. Offline that
   fails before any request is sent. :func:`install` adds a urllib handler that answers those URLs with a stand-in
   template: the pipeline's name, schema version 2.1.0 and the names of its parameters, which is all the SDK reads.
   tuneforge identifies the pipeline by ``templateUri``, never by the template the client sends.
2. It probes the output bucket with google-cloud-storage (``storage.googleapis.com``). With ``server`` given,
   :func:`install` points ``STORAGE_EMULATOR_HOST`` at tuneforge, which answers the probe with a 404 and the bucket
   creation with a 403 (a 200 would send the SDK on to Cloud Resource Manager). The SDK ignores the failure but logs
   it with a traceback; :func:`install` turns that record into one line saying why nothing needs creating.

Without tuneforge installed on the client, the same is a few lines of standard library (README, "Code models and
distillation"): map ``*-kfp.pkg.dev`` URLs to ``{server}/tuneforge/pipeline-templates/<path>`` in a urllib handler.
"""

from __future__ import annotations

import io
import logging
import os
import re
import urllib.error
import urllib.request
import urllib.response
from email.message import Message

from tuneforge.control.pipeline_templates import TEMPLATES, stand_in_template, template_yaml

__all__ = ["BucketProbeFilter", "TemplateHandler", "install", "stand_in_template", "template_yaml"]

KFP_URL = re.compile(r"^https://[a-z0-9-]+-kfp\.pkg\.dev/")


class TemplateHandler(urllib.request.BaseHandler):
    """Answers ``https://*-kfp.pkg.dev/...`` template downloads locally; other URLs go on as usual."""

    handler_order = 100  # before the default HTTPS handler

    def https_open(self, req: urllib.request.Request):
        url = req.full_url
        if not KFP_URL.match(url):
            return None
        body = template_yaml(url)
        if body is None:
            supported = ", ".join(TEMPLATES)
            raise urllib.error.URLError(f"{url} is not a pipeline tuneforge runs; supported templates: {supported}")
        headers = Message()
        headers["Content-Type"] = "application/x-yaml"
        response = urllib.response.addinfourl(io.BytesIO(body.encode()), headers, url, 200)
        setattr(response, "msg", "OK")  # noqa: B010 - urllib reads it; addinfourl declares no such attribute
        return response


class BucketProbeFilter(logging.Filter):
    """The SDK's "Error when trying to get or create a GCS bucket" record, without its traceback: tuneforge maps
    gs:// buckets to folders of its bucket root, so there is nothing to create."""

    PROBE = "get or create a GCS bucket for the pipeline output artifacts"

    def filter(self, record: logging.LogRecord) -> bool:
        if self.PROBE in record.getMessage():
            record.msg, record.args, record.exc_info, record.exc_text = (
                "tuneforge: gs:// buckets are folders of the server's bucket root; no bucket to create",
                (),
                None,
                None,
            )
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install(server: str | None = None) -> None:
    """Answer template downloads locally and, with ``server`` (e.g. ``http://127.0.0.1:8080``), send the SDK's
    bucket probe to tuneforge instead of storage.googleapis.com. Call once before ``tune_model``/``distill_from``."""
    urllib.request.install_opener(urllib.request.build_opener(TemplateHandler()))
    if server:
        os.environ["STORAGE_EMULATOR_HOST"] = server.rstrip("/")
        probe_logger = logging.getLogger("google.cloud.aiplatform.pipeline_jobs")
        if not any(isinstance(f, BucketProbeFilter) for f in probe_logger.filters):
            probe_logger.addFilter(BucketProbeFilter())
