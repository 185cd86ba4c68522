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
    real_gcs: bool = Field(
        default=False,
        description="Read and write gs:// URIs on Google Cloud Storage (needs gcsfs) instead of the local bucket root.",
    )

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
