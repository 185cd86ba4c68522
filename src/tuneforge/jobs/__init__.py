"""Jobs: the durable store (SQLAlchemy), the tuning-job service (validation, quota, states) and workers."""
