"""One settings class for the whole process: flags and ``TUNEFORGE_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".tuneforge",
        description="Where tuneforge keeps its database, built tiny models, the local bucket root and demo runs.",
    )
    bucket_root: Path | None = Field(
        default=None,
        description="gs://BUCKET/path maps to <bucket_root>/BUCKET/path. Default: <home>/buckets.",
    )
    catalog: Path | None = Field(
        default=None,
        description="Operator catalog file merged over the built-in one. Default: <home>/catalog.yaml if present.",
    )
    dev: bool = Field(
        default=False,
        description="Dev mode: models without configured weights run on their family's tiny stand-in.",
    )
    dev_base: str = Field(
        default="",
        description="In dev mode, the catalog model closed ids (Gemini, OpenAI, PaLM-era) run on instead of their "
        "family's tiny stand-in, e.g. HuggingFaceTB/SmolLM2-135M-Instruct (the real instruct model `make install` "
        "puts on the machine). Empty: the stand-ins.",
    )
    real_gcs: bool = Field(
        default=False,
        description="Read and write gs:// URIs on Google Cloud Storage (needs gcsfs) instead of the local bucket root.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the job store (sqlite:///… or postgresql://…). Default: SQLite under <home>.",
    )
    project: str = Field(
        default="tuneforge",
        description="Default project of the CLI's remote commands and the demo "
        "(a client names its project in every request; the SDK's vertexai.init(project=…)).",
    )
    location: str = Field(default="us-central1", description="Default region of the CLI's remote commands.")
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8080, description="Port the API listens on.")
    api_keys: str = Field(
        default="",
        description="Comma-separated API keys; KEY=proj1|proj2 scopes a key to projects. Empty: no authentication "
        "(only allowed on loopback unless --insecure).",
    )
    bucket_access: str = Field(
        default="",
        description="With API keys: who may use which bucket, comma-separated BUCKET[/PREFIX]=PROJECT[:read]|… "
        "(a project without :read may read and write; e.g. shared-data=a|b:read,team=a|b). A bucket named here "
        "belongs to the projects it lists; any other belongs to the project that first writes to it.",
    )
    teacher_urls: str = Field(
        default="",
        description="With API keys: comma-separated URL prefixes a distillation pipeline may call as an "
        "OpenAI-compatible teacher (e.g. https://llm.internal/v1/). With keys, any other URL is refused, so a tenant "
        "cannot make the server call addresses of its choosing; without keys any URL is allowed.",
    )
    insecure: bool = Field(default=False, description="Allow listening on a non-loopback address without API keys.")
    max_running_jobs_per_project: int = Field(
        default=1, ge=1, description="Concurrent tuning jobs per project (quota)."
    )
    queue_over_quota: bool = Field(
        default=False, description="Over quota: queue new jobs (JOB_STATE_QUEUED) instead of answering 429."
    )
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, description="How often a worker records a running job's heartbeat."
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A running job whose heartbeat is older than this is recovered."
    )
    max_attempts: int = Field(default=3, ge=1, description="Runs of a job (first plus resumptions) before it fails.")
    max_upload_bytes: int = Field(
        default=256 * 2**20, ge=1, description="Largest dataset file the API accepts as an upload (the console's)."
    )
    max_image_bytes: int = Field(
        default=20 * 2**20, ge=1, description="Largest image file a dataset line or a serving request may name."
    )
    max_image_pixels: int = Field(
        default=40_000_000,
        ge=1,
        description="Largest image, in pixels (width x height), a dataset or request may hold.",
    )
    workers: int = Field(default=1, ge=0, description="In-process worker slots of `tuneforge serve` (0: none).")
    processes_per_job: int = Field(
        default=1,
        ge=1,
        description="Processes (one per GPU) a FULL tuning job runs on, its weights sharded with "
        "FSDP2; PEFT_ADAPTER jobs use one.",
    )
    auto_deploy: bool = Field(
        default=True,
        description="Deploy each finished tuning job's model on a new endpoint (tunedModel.endpoint), "
        "as Vertex does; the model is loaded on its first request.",
    )
    serve_device: str = Field(
        default="auto", description="Where deployed models run: auto (CUDA if present), cpu, cuda."
    )
    serve_max_batch_size: int = Field(default=32, ge=1, description="Sequences decoded together per loaded model.")
    serve_batch_wait_ms: float = Field(
        default=2.0, ge=0, description="An idle model waits this long for more requests to prefill them together."
    )
    serve_memory_limit_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Cap on memory the serving engine may fill with weights (default: what is free).",
    )
    serve_default_max_tokens: int = Field(default=256, ge=1, description="Tokens generated when a request names none.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tuneforge.db'}"

    @property
    def resolved_bucket_root(self) -> Path:
        return self.bucket_root or self.home / "buckets"

    @property
    def resolved_catalog(self) -> Path | None:
        if self.catalog is not None:
            return self.catalog
        default = self.home / "catalog.yaml"
        return default if default.exists() else None

    @property
    def models_dir(self) -> Path:
        """Where built-in tiny models are materialised (built once, then loaded like any local weights)."""
        return self.home / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
