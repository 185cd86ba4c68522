"""tuneforge: self-hosted, Vertex AI-compatible tuning of open-weight models."""

__version__ = "0.1.0"
__all__ = ["__version__"]
