"""The REST API (Vertex AI wire): app factory, routers per resource, errors mapped in one place."""

from tuneforge.api.app import create_app

__all__ = ["create_app"]
