"""Dataset preflight: the model a run starts from, its limits, and every problem in its datasets, found before any
weights are loaded. The recipe, the tuningJobs service (before a job is stored) and `tuneforge validate` all check
data through here, so they report the same problems in the same words."""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge import storage
from tuneforge.catalog.catalog import Catalog, TuningMode
from tuneforge.data import ChatEncoder, Limits, PreparedDataset, Report, prepare_dataset
from tuneforge.data.distill import DistillExample, read_examples
from tuneforge.data.preference import PreparedPreferences, prepare_preferences
from tuneforge.errors import DatasetInvalid
from tuneforge.settings import Settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.loading import ModelSource, chat_encoder, limits_for, load_tokenizer, resolve_source


@dataclass
class Preflight:
    source: ModelSource
    limits: Limits
    encoder: ChatEncoder
    train: PreparedDataset | PreparedPreferences  # preference pairs for preference tuning
    validation: PreparedDataset | PreparedPreferences | None
    report: Report  # both datasets' problems

    @property
    def summary(self) -> str:
        """What was validated, in a line: each file's examples and tokens (a job's first event)."""
        files = [d for d in (self.train, self.validation) if d is not None]
        shown = [f"{d.source}: {d.report.info.get('examples', 0):,} examples, {d.report.info.get('tokens', 0):,} tokens"
                 for d in files]  # fmt: skip
        return "Validated the data: " + "; ".join(shown)


def open_model(
    catalog: Catalog,
    base_model: str,
    custom_base_model: str | None,
    mode: TuningMode,
    *,
    dev: bool | None,
    settings: Settings,
    strict: bool = False,
) -> tuple[ModelSource, Limits]:
    """The model a run starts from and what the catalog allows it in ``mode``."""
    source = resolve_source(catalog, base_model, custom_base_model, dev=dev, settings=settings)
    return source, limits_for(source.resolved.entry, base_model, mode, strict)


def prepare(
    uris: list[str],
    limits: Limits,
    encoder: ChatEncoder | None,
    settings: Settings,
    *,
    expected: str | None = None,
    default_system: str | None = None,
    access: storage.Access | None = None,
) -> list[PreparedDataset]:
    return [
        prepare_dataset(
            uri, limits, encoder, settings=settings, expected=expected, default_system=default_system, access=access
        )
        for uri in uris
    ]


def combined(datasets: list[PreparedDataset | PreparedPreferences | None]) -> Report:
    return Report(source="datasets", problems=[p for d in datasets if d is not None for p in d.report.problems])


def require_clean(report: Report, base_model: str, validate_with: str | None = None) -> None:
    """Raise one DatasetInvalid listing every error (a missing file is reported as itself, once). ``validate_with``:
    the `tuneforge validate` option that checks the same rules (default: --model BASE_MODEL)."""
    errors = report.errors
    if not errors:
        return
    if len(errors) == 1 and errors[0].line is None:
        raise DatasetInvalid(str(errors[0]), report, listed=False)
    files = sorted({p.source for p in errors if p.source})
    option = validate_with or f"--model {base_model}"
    command = f"`tuneforge validate {files[0] if len(files) == 1 else 'FILE'} {option}`"
    raise DatasetInvalid(
        f"{len(errors)} error(s) in the dataset(s); nothing was tuned. Fix every line listed "
        f"({command} prints the same report)",
        report,
    )


def check_datasets(
    config: TuningConfig,
    *,
    settings: Settings,
    catalog: Catalog,
    tokenizer=None,
    access: storage.Access | None = None,
) -> Preflight:
    """Resolve the model and read, validate and tokenise both datasets (their images read with ``access``: a
    client's project, where the server has tenants); any error raises here."""
    dev = settings.dev if config.dev is None else config.dev
    source, limits = open_model(
        catalog,
        config.base_model,
        config.custom_base_model,
        config.tuning_mode,
        dev=dev,
        settings=settings,
        strict=config.strict_length,
    )
    encoder = chat_encoder(source, tokenizer or load_tokenizer(source), settings)
    uris = [config.train_dataset] + ([config.validation_dataset] if config.validation_dataset else [])
    prepared: list[PreparedDataset] | list[PreparedPreferences]
    if config.method == "preference":
        prepared = [prepare_preferences(uri, limits, encoder, settings=settings) for uri in uris]
    else:
        prepared = prepare(
            uris,
            limits,
            encoder,
            settings,
            expected=config.dataset_format,
            default_system=config.default_context,
            access=access,
        )
    train, validation = prepared[0], (prepared[1] if len(prepared) > 1 else None)
    report = combined([train, validation])
    require_clean(report, config.base_model)
    return Preflight(source, limits, encoder, train, validation, report)


def check_distillation(
    config: TuningConfig, *, settings: Settings, catalog: Catalog
) -> tuple[ModelSource, list[DistillExample]]:
    """The student a distillation run starts from and its prompts, after every problem in its prompt and evaluation
    datasets (read as distillation examples: the teacher labels them later, so they are not tokenised here); any
    error raises."""
    dev = settings.dev if config.dev is None else config.dev
    source, _ = open_model(
        catalog, config.base_model, config.custom_base_model, config.tuning_mode, dev=dev, settings=settings
    )
    examples, train_report = read_examples(config.train_dataset, settings)
    reports = [train_report]
    if config.validation_dataset:
        reports.append(read_examples(config.validation_dataset, settings, require_labels=True)[1])
    problems = [p for r in reports for p in r.problems]
    require_clean(Report(source="datasets", problems=problems), config.base_model, "--for distillation")
    return source, examples
