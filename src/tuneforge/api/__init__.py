"""The REST API (Vertex AI wire): app factory, routers per resource, errors mapped in one place. May import
control, worker (the in-process worker), serve and everything below; never cli."""

from tuneforge.api.app import create_app

__all__ = ["create_app"]
