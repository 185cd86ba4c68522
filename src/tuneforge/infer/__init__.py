"""The inference engine (continuous batching, LoRA adapters on a shared base), sampling, prompt rendering and
offline batch generation; used by serving and by training (teachers, evaluation). May import data, catalog and
the base; never train, serve, control or above."""
