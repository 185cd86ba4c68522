"""Load the declarative catalog (``models.yaml`` plus the operator's file) and resolve model ids to weights."""

from __future__ import annotations

import difflib
import fnmatch
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneforge.errors import InvalidArgument, ModelNotFound, WeightsNotConfigured
from tuneforge.settings import Settings, get_settings


class TuningMode(str, Enum):
    PEFT_ADAPTER = "PEFT_ADAPTER"
    FULL = "FULL"

    @classmethod
    def parse(cls, value: str | int | TuningMode) -> TuningMode:
        """Accept the enum, its wire spellings (``TUNING_MODE_FULL``, integers 1/2) and CLI shorthands."""
        if isinstance(value, TuningMode):
            return value
        aliases = {
            "1": cls.FULL,
            "full": cls.FULL,
            "tuning_mode_full": cls.FULL,
            "2": cls.PEFT_ADAPTER,
            "peft_adapter": cls.PEFT_ADAPTER,
            "lora": cls.PEFT_ADAPTER,
            "peft": cls.PEFT_ADAPTER,
            "adapter": cls.PEFT_ADAPTER,
            "tuning_mode_peft_adapter": cls.PEFT_ADAPTER,
        }
        found = aliases.get(str(value).strip().lower())
        if found is None:
            raise InvalidArgument(f"tuning mode {value!r} is not valid; use FULL or PEFT_ADAPTER (lora)")
        return found


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


PREFERENCE_LR_RATIO = 0.05  # DPO's usual rate is about a twentieth of SFT's (TRL's 5e-7 against 1e-5 for FULL)


class ModeSpec(_Strict):
    max_seq_len: int = Field(gt=0, description="Longest example in tokens (after the chat template).")
    learning_rate: float = Field(gt=0, description="Recommended learning rate; the multiplier scales it.")
    preference_learning_rate: float | None = Field(
        default=None,
        gt=0,
        description=f"Recommended rate for preference tuning (default: learning_rate x {PREFERENCE_LR_RATIO}).",
    )

    def rate(self, method: str = "supervised") -> float:
        """The recommended learning rate of a tuning method (supervised or preference)."""
        if method == "preference":
            return self.preference_learning_rate or self.learning_rate * PREFERENCE_LR_RATIO
        return self.learning_rate


class Defaults(_Strict):
    epochs: int = 3
    adapter_size: int = 16
    batch_size: int = 8
    beta: float = Field(default=0.1, gt=0, description="Preference tuning (DPO): how far from the reference model.")


def same_architecture(found: str, expected: str) -> bool:
    """Whether a checkpoint's model_type (or a GGUF file's architecture) is the family's: Gemma 3 text-only
    checkpoints report gemma3_text, multimodal ones gemma3."""
    return found == expected or found.startswith(expected + "_")


class Family(_Strict):
    name: str = ""
    model_type: str = Field(description="Hugging Face config.model_type a checkpoint of this family has.")
    tiny: str | None = Field(default=None, description="Catalog id of the family's tiny stand-in.")
    end_of_turn: str = Field(description="Token that ends an assistant turn; trained as the turn's EOS.")


class ModelEntry(_Strict):
    id: str = ""
    display_name: str = ""
    family: str
    modes: dict[TuningMode, ModeSpec]
    modalities: list[str] = ["text"]
    weights: str | None = Field(
        default=None,
        description="Local folder or gs:// URI in Hugging Face format, or a .gguf file (a path, a gs:// URI, or "
        "package:DIST/PATH in an installed Python package), de-quantized once into the models cache.",
    )
    defaults: Defaults = Defaults()

    def mode(self, mode: TuningMode) -> ModeSpec:
        if mode not in self.modes:
            allowed = ", ".join(m.value for m in self.modes)
            raise InvalidArgument(f"{self.id} does not support tuning mode {mode.value}; it allows {allowed}")
        return self.modes[mode]


class Alias(_Strict):
    id: str = ""
    family: str
    modes: list[TuningMode] = [TuningMode.PEFT_ADAPTER]
    maps_to: str | None = Field(default=None, description="Open model (catalog id) this closed id runs as.")
    batch_class: str | None = None


class ResolvedModel(BaseModel):
    """What a request for ``requested_id`` runs on."""

    requested_id: str
    entry: ModelEntry  # the open model that actually runs (the alias target or the tiny stand-in)
    family: Family
    weights: str  # a URI or builtin:NAME
    stand_in: bool = False  # dev mode substituted a tiny model for missing weights
    note: str = ""


class CatalogFile(_Strict):
    families: dict[str, Family] = {}
    models: dict[str, ModelEntry] = {}
    aliases: dict[str, Alias] = {}
    alias_patterns: dict[str, Alias] = Field(
        default={}, description="Glob patterns (gemini-*) of closed ids not listed under aliases."
    )


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Catalog:
    def __init__(self, data: CatalogFile, operator_file: Path | None = None):
        self.families = {k: v.model_copy(update={"name": k}) for k, v in data.families.items()}
        self.models = {k: v.model_copy(update={"id": k}) for k, v in data.models.items()}
        self.aliases = {k: v.model_copy(update={"id": k}) for k, v in data.aliases.items()}
        self.alias_patterns = {k: v.model_copy(update={"id": k}) for k, v in data.alias_patterns.items()}
        self.operator_file = operator_file
        entries: list[ModelEntry | Alias] = [
            *self.models.values(),
            *self.aliases.values(),
            *self.alias_patterns.values(),
        ]
        for entry in entries:
            if entry.family not in self.families:
                raise InvalidArgument(f"catalog: {entry.id} names unknown family {entry.family!r}")

    # -- lookup -------------------------------------------------------------------------------------------------
    def all_ids(self) -> list[str]:
        return [*self.models, *self.aliases]

    def alias(self, model_id: str) -> Alias | None:
        """The closed id ``model_id``: listed under aliases, or matching one of alias_patterns (gemini-*)."""
        if model_id in self.aliases:
            return self.aliases[model_id]
        if model_id in self.models:
            return None
        for pattern, alias in self.alias_patterns.items():
            if fnmatch.fnmatchcase(model_id, pattern):
                return alias.model_copy(update={"id": model_id})
        return None

    def modes(self, model_id: str) -> list[TuningMode]:
        """The tuning modes ``model_id`` allows (NOT_FOUND for an unknown id)."""
        alias = self.alias(model_id)
        if alias is not None:
            return list(alias.modes)
        if model_id in self.models:
            return list(self.models[model_id].modes)
        raise self.unknown(model_id)

    def unknown(self, model_id: str) -> ModelNotFound:
        """NOT_FOUND for an id not in the catalog, with the closest ids and how to add one."""
        close = difflib.get_close_matches(model_id, self.all_ids(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return ModelNotFound(
            f"unknown model {model_id!r}.{hint} Known ids: {', '.join(self.all_ids())}. "
            f"Add your own in the catalog file ({self._config_hint()})."
        )

    def _config_hint(self) -> str:
        return str(self.operator_file) if self.operator_file else "TUNEFORGE_CATALOG or <TUNEFORGE_HOME>/catalog.yaml"

    def model_type(self, model_id: str) -> str | None:
        """The architecture (config.model_type) ``model_id`` needs, or None when the catalog does not know the id."""
        try:
            return self.families[self.entry(model_id).family].model_type
        except ModelNotFound:
            return None

    def entry(self, model_id: str) -> ModelEntry:
        """The catalog entry for an open model id (aliases resolve to their target)."""
        if model_id in self.models:
            return self.models[model_id]
        alias = self.alias(model_id)
        target = alias.maps_to if alias else None
        if target:
            return self.entry(target)
        raise self.unknown(model_id)

    def resolve(self, model_id: str, *, dev: bool | None = None, settings: Settings | None = None) -> ResolvedModel:
        """Which weights ``model_id`` runs on. Dev mode is the one decision: no weights -> the family's tiny model."""
        settings = settings or get_settings()
        dev = settings.dev if dev is None else dev
        alias = self.alias(model_id)
        if alias is not None:
            if alias.maps_to:
                target = self.resolve(alias.maps_to, dev=dev, settings=settings)
                note = f"{model_id} runs as {alias.maps_to}" + (f"; {target.note}" if target.note else "")
                return target.model_copy(update={"requested_id": model_id, "note": note})
            family = self.families[alias.family]
            if dev and settings.dev_base and settings.dev_base != model_id:
                target = self.resolve(settings.dev_base, dev=dev, settings=settings)
                note = f"{model_id} runs as {settings.dev_base} in dev mode (TUNEFORGE_DEV_BASE)"
                return target.model_copy(update={"requested_id": model_id, "note": note})
            if dev and family.tiny:
                return self._stand_in(model_id, family, closed=True)
            raise WeightsNotConfigured(
                f"{model_id} is a closed model id and cannot run self-hosted; map it to an open model in the "
                f"catalog file ({self._config_hint()}):\n  aliases:\n    {model_id}:\n      maps_to: "
                f"meta/llama3_1@llama-3.1-8b-instruct\nor run the server in dev mode (--dev / TUNEFORGE_DEV=1) "
                f"to use the {family.tiny} stand-in."
            )
        if model_id not in self.models:
            raise self.unknown(model_id)
        entry = self.models[model_id]
        family = self.families[entry.family]
        if entry.weights:
            return ResolvedModel(requested_id=model_id, entry=entry, family=family, weights=entry.weights)
        if dev and family.tiny:
            return self._stand_in(model_id, family, closed=False, original=entry)
        raise WeightsNotConfigured(
            f"weights for {model_id} are not configured. Put the model in Hugging Face format in a local folder "
            f"or under a gs:// URI and name it in the catalog file ({self._config_hint()}):\n  models:\n"
            f"    {model_id}:\n      weights: /path/to/weights-or-gs-uri\nor give a custom base model "
            "(customBaseModel; --custom-base-model on the CLI), or run in dev mode (--dev / TUNEFORGE_DEV=1) to use "
            f"the {family.tiny} stand-in."
        )

    def _stand_in(
        self, model_id: str, family: Family, *, closed: bool, original: ModelEntry | None = None
    ) -> ResolvedModel:
        assert family.tiny is not None
        tiny = self.models[family.tiny]
        # The stand-in keeps the requested model's modes and documented sequence limits, so validation and mode
        # rules behave as they will with real weights; learning rates are the tiny model's (a real model's rate
        # would teach a random-init tiny model nothing).
        modes = tiny.modes
        if original is not None:
            fallback = next(iter(tiny.modes.values()))
            modes = {
                m: s.model_copy(
                    update={
                        "learning_rate": tiny.modes.get(m, fallback).learning_rate,
                        "preference_learning_rate": tiny.modes.get(m, fallback).preference_learning_rate,
                    }
                )
                for m, s in original.modes.items()
            }
        entry = tiny.model_copy(
            update={"modes": modes, "modalities": original.modalities if original else tiny.modalities}
        )
        what = "closed model id" if closed else "model without configured weights"
        note = f"dev mode: {model_id} ({what}) runs on the tiny stand-in {tiny.id}"
        return ResolvedModel(
            requested_id=model_id, entry=entry, family=family, weights=tiny.weights or "", stand_in=True, note=note
        )


def load_catalog(settings: Settings | None = None, extra: Path | None = None) -> Catalog:
    settings = settings or get_settings()
    raw = yaml.safe_load(resources.files("tuneforge.catalog").joinpath("models.yaml").read_text("utf-8"))
    operator = extra or settings.resolved_catalog
    if operator is not None:
        try:
            over = yaml.safe_load(Path(operator).read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidArgument(f"catalog file {operator}: {exc}") from exc
        if not isinstance(over, dict):
            raise InvalidArgument(f"catalog file {operator}: expected a mapping with models/aliases/families")
        raw = _deep_merge(raw, over)
    try:
        data = CatalogFile.model_validate(raw)
    except ValidationError as exc:
        where = operator or "built-in models.yaml"
        raise InvalidArgument(f"catalog file {where} is invalid:\n{exc}") from exc
    return Catalog(data, operator_file=Path(operator) if operator else None)
