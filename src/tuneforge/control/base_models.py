"""The models a job can start from, as the console's picker shows them, and the catalog id a publisher model name
(``publishers/meta/models/llama3_1@llama-3.1-8b``) stands for."""

from __future__ import annotations

from tuneforge.catalog import Catalog, ModelEntry, load_catalog
from tuneforge.catalog.catalog import PREFERENCE_LR_RATIO, Alias
from tuneforge.errors import NotFound, WeightsNotConfigured
from tuneforge.settings import Settings
from tuneforge.wire.catalog import BaseModelInfo, ListBaseModelsResponse, ModeLimits

TUNEFORGE_PUBLISHER = "tuneforge"  # publishers/tuneforge/models/tiny-llama: catalog ids without a publisher


def _modes(entry: ModelEntry) -> list[ModeLimits]:
    return [
        ModeLimits(
            tuning_mode=mode.value,
            max_seq_len=spec.max_seq_len,
            learning_rate=spec.learning_rate,
            preference_learning_rate=spec.preference_learning_rate or spec.learning_rate * PREFERENCE_LR_RATIO,
        )
        for mode, spec in entry.modes.items()
    ]


def _limits_entry(catalog: Catalog, model_id: str, alias: Alias | None) -> ModelEntry:
    """The entry whose limits and defaults a job on ``model_id`` gets: its own or its alias target's; for a closed id
    mapped to nothing, its family's stand-in's (what dev mode runs)."""
    try:
        return catalog.entry(model_id)
    except NotFound:
        assert alias is not None  # an open model id is always an entry
        return catalog.models[catalog.families[alias.family].tiny or ""]


def _info(catalog: Catalog, model_id: str, alias: Alias | None, settings: Settings) -> BaseModelInfo:
    runs_on: str | None
    try:
        resolved = catalog.resolve(model_id, settings=settings)
        entry, stand_in, note, runs_on = resolved.entry, resolved.stand_in, resolved.note or None, resolved.entry.id
        configured = not stand_in
    except WeightsNotConfigured as exc:
        configured, stand_in, runs_on = False, False, alias.maps_to if alias else None
        entry, note = _limits_entry(catalog, model_id, alias), str(exc).splitlines()[0]
    modes = _modes(entry)
    if alias is not None:  # a closed id tunes only in the modes its alias allows
        modes = [m for m in modes if m.tuning_mode in {a.value for a in alias.modes}]
    own = catalog.models.get(model_id)
    return BaseModelInfo(
        id=model_id,
        display_name=(own.display_name if own else "") or model_id,
        kind="closed" if alias else "open",
        family=alias.family if alias else entry.family,
        runs_on=runs_on if runs_on != model_id else None,
        modalities=(own or entry).modalities,
        modes=modes,
        epochs=entry.defaults.epochs,
        batch_size=entry.defaults.batch_size,
        adapter_size=entry.defaults.adapter_size,
        beta=entry.defaults.beta,
        weights_configured=configured,
        stand_in=stand_in,
        note=note,
    )


def list_base_models(settings: Settings) -> ListBaseModelsResponse:
    """Every open model and closed id of the catalog, with its modes, limits and defaults as a job would get them."""
    catalog = load_catalog(settings)
    models = [_info(catalog, model_id, None, settings) for model_id in catalog.models]
    models += [_info(catalog, alias.id, alias, settings) for alias in catalog.aliases.values()]
    return ListBaseModelsResponse(models=models)


def publisher_model_name(model_id: str, catalog: Catalog) -> str:
    """The publisher model a catalog id is served as: ``meta/llama3_1@…`` -> ``publishers/meta/models/llama3_1@…``,
    a closed id -> ``publishers/google/models/ID``, a bare open id -> ``publishers/tuneforge/models/ID``."""
    publisher, _, model = model_id.rpartition("/")
    if not publisher:
        publisher = "google" if catalog.alias(model_id) is not None else TUNEFORGE_PUBLISHER
    return f"publishers/{publisher}/models/{model}"


def publisher_model_id(catalog: Catalog, publisher: str, model: str) -> str:
    """The catalog id of ``publishers/{publisher}/models/{model}``: ``meta/llama3_1@…`` for publisher meta, the bare
    id for google (gemini-2.5-flash) and tuneforge (tiny-llama)."""
    bare = [model] if publisher in ("google", TUNEFORGE_PUBLISHER) else []
    for candidate in (f"{publisher}/{model}", *bare):
        if candidate in catalog.models or catalog.alias(candidate) is not None:
            return candidate
    raise NotFound(
        f"publisher model {publisher}/{model} is not in the catalog; catalog ids: {', '.join(catalog.all_ids())} "
        f"(publishers/PUBLISHER/models/MODEL, e.g. publishers/meta/models/llama3_1@llama-3.1-8b, "
        f"publishers/google/models/gemini-2.5-flash, publishers/{TUNEFORGE_PUBLISHER}/models/tiny-llama)"
    )
