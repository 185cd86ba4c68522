"""Serving: endpoints (resources here; engines and deployment in the serving issue)."""
