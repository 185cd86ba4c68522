"""Preference tuning: Direct Preference Optimization (Rafailov et al., 2023), behind tuningJobs'
``preferenceOptimizationSpec``, google-genai's ``PREFERENCE_TUNING`` and ``tuneforge tune --method preference``.

Method, top to bottom:
1. Resolve the model (catalog id, custom base, or an earlier run's output: the documents advise SFT on the
   preferred completions first, then preference tuning from that checkpoint) and read, validate and tokenise the
   preference datasets (data/preference.py): each completion after its prompt, trained exactly as SFT trains a
   reply (through its end-of-turn token), the prompt never. Any error stops the run here, every problem listed.
2. Resolve hyperparameters as SFT does (recipes/sft.py ``resolve_plan``), plus ``beta`` (catalog default).
3. Load the model; LoRA for PEFT_ADAPTER. The reference model is the starting point itself: for a new adapter,
   the same weights with the adapter switched off (no second copy); otherwise (FULL, or an adapter continued from
   an earlier run) its sequence log-probabilities are computed once before training and saved with the run.
4. Train: each step's pairs packed into micro-batches of whole pairs (no attention across sequences), each
   sequence's log-probability summed over its completion's tokens without full logits, the DPO loss averaged
   over the step's pairs whatever the micro-batching. Metrics: loss, reward accuracy, chosen and rejected rewards,
   margin (train and eval). Checkpoints and resume as SFT.
5. Export the final model folder as SFT does; serving reads it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tuneforge import storage
from tuneforge.catalog import TuningMode, load_catalog
from tuneforge.catalog.catalog import Catalog
from tuneforge.data.preference import EncodedPair, PreparedPreferences
from tuneforge.data.stats import preference_data_stats
from tuneforge.errors import InvalidArgument
from tuneforge.settings import Settings, get_settings
from tuneforge.train.artifacts import RunLayout
from tuneforge.train.callbacks import Callbacks
from tuneforge.train.checkpoint import TrainerState, latest_checkpoint, load_checkpoint
from tuneforge.train.config import ResolvedRun, TuningConfig
from tuneforge.train.distributed import World, processes_from_env
from tuneforge.train.fastpath import row_tokens_for
from tuneforge.train.metrics import MetricsWriter
from tuneforge.train.preference import (
    PairBatch,
    PreferenceTotals,
    SequenceLogProbs,
    dpo_loss,
    pack_pairs,
    plan_pairs,
    preference_backward,
)
from tuneforge.train.preflight import Preflight
from tuneforge.train.recipes.sft import (
    RunResult,
    check_same_run,
    epoch_order,
    export,
    finished_run,
    make_optimizer,
    record_evaluation,
    resolve_data,
    resolve_plan,
    run_record,
    setup_model,
    setup_world,
    train_loop,
    write_run_files,
)
from tuneforge.train.schedule import lr_factor

REFERENCE_LOGPS = "reference_logps.safetensors"
STATS_KEY = "preferenceOptimizationDataStats"


def run_dpo(
    config: TuningConfig,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    callbacks: Callbacks | None = None,
    should_stop: Callable[[], bool] | None = None,
    access: storage.Access | None = None,
) -> RunResult:
    """Resolve, build, train, export: the method of the module docstring (``access`` as run_sft's)."""
    settings = settings or get_settings()
    cb = callbacks or Callbacks()
    if config.method != "preference":
        raise InvalidArgument("run_dpo runs preference tuning (method preference); use run_sft for supervised tuning")
    if processes_from_env() > 1:  # checked before joining a process group
        raise InvalidArgument("preference tuning runs in one process; start it without torchrun")
    data = resolve_data(config, settings, catalog or load_catalog(settings), cb, access)  # 1
    world, device, dtype = setup_world(config)
    plan = resolve_plan(config, data, world, device, dtype)  # 2 (beta too)
    layout = RunLayout(storage.output_dir(config.output_uri, settings))
    record = run_record(config, data, plan)
    check_same_run(layout, record)
    finished = finished_run(layout, record, cb)
    if finished is not None:
        return finished
    stats = preference_stats(data, plan)
    write_run_files(layout, record, data, STATS_KEY, stats)
    run = build(config, data, plan, layout, world, device, dtype, cb)  # 3
    result = RunResult.starting(run, record, STATS_KEY, stats)
    train_loop(run, result, settings, cb, should_stop, lambda: _optimizer_step(run), _evaluate)  # 4
    if not result.cancelled:
        result.final_dir = export(run, result, record, cb)  # 5
        storage.publish(layout.root, config.output_uri, settings)
    return result


def preference_stats(data, plan) -> dict:
    """The ``preferenceOptimizationDataStats`` of the run's training pairs (the job reports them)."""
    train_set = _pairs(data.train)
    return preference_data_stats(
        train_set.examples, train_set.pairs, epochs=plan.epochs_effective, steps=plan.total_steps
    )


def _pairs(dataset) -> PreparedPreferences:
    assert isinstance(dataset, PreparedPreferences)  # check_datasets reads preference lines for this method
    return dataset


# --- 3: model, reference, batches --------------------------------------------------------------------------------


@dataclass
class PreferenceRun:
    """What ``build`` sets up for the loop (the fields recipes/sft.py's checkpoint, evaluation and export read)."""

    config: TuningConfig
    plan: ResolvedRun
    data: Preflight
    layout: RunLayout
    world: World
    device: torch.device
    model: torch.nn.Module
    logps: SequenceLogProbs
    reference: Reference
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: TrainerState
    batches: PairBatches


def build(
    config: TuningConfig,
    data: Preflight,
    plan: ResolvedRun,
    layout: RunLayout,
    world: World,
    device: torch.device,
    dtype: torch.dtype,
    cb: Callbacks,
) -> PreferenceRun:
    torch.manual_seed(config.seed)
    model = setup_model(config, data.source, plan, world, device, dtype)
    logps = SequenceLogProbs(model)
    batches = PairBatches(config, plan, data, model, device)
    adapter_off = config.tuning_mode == TuningMode.PEFT_ADAPTER and data.source.adapter_dir is None
    reference = Reference(model, logps, device, None if adapter_off else _precomputed(layout, logps, batches, cb))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, plan.learning_rate, config.weight_decay, fused=True, device=device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, plan.total_steps, plan.warmup_steps, config.lr_scheduler, config.min_lr_ratio)
    )
    state = TrainerState()
    resume = latest_checkpoint(layout)
    if resume is not None:
        state = load_checkpoint(resume, model, optimizer, scheduler)
        cb.on_message(f"resuming from {resume.name} (step {state.step}) in {layout.root}")
    return PreferenceRun(
        config, plan, data, layout, world, device, model, logps, reference, params, optimizer, scheduler, state, batches
    )


class PairBatches:
    """Each step's micro-batches of whole pairs (by a token budget, as SFT's fast path packs) and the validation
    batches."""

    def __init__(self, config: TuningConfig, plan: ResolvedRun, data: Preflight, model, device: torch.device):
        tokenizer = data.encoder.tokenizer
        self.config, self.plan, self.device = config, plan, device
        self.examples: list[EncodedPair] = _pairs(data.train).examples
        self.val: list[EncodedPair] = _pairs(data.validation).examples if data.validation else []
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        everything = self.examples + self.val
        self.budget = config.micro_batch_tokens or plan.micro_batch_size * max(len(p) for p in everything)
        longest = max(max(len(p.chosen), len(p.rejected)) for p in everything)
        self.rows = row_tokens_for(getattr(model.config, "_attn_implementation", None), longest)
        self.validation = self.micro_batches(self.val)

    def micro_batches(self, pairs: list[EncodedPair]) -> list[PairBatch]:
        return [pack_pairs(group, self.pad_id, self.rows) for group in plan_pairs(pairs, self.budget)]

    def step(self, step: int) -> list[PairBatch]:
        epoch, index = divmod(step, self.plan.steps_per_epoch)
        order = epoch_order(len(self.examples), self.config.seed, epoch)
        size = self.plan.batch_size
        return self.micro_batches([self.examples[i] for i in order[index * size : (index + 1) * size]])


class Reference:
    """The reference model's sequence log-probabilities: the policy with its adapter switched off, or a table
    computed once before training (rows: pairs; columns: chosen, rejected)."""

    def __init__(self, model, logps: SequenceLogProbs, device: torch.device, table: dict[str, torch.Tensor] | None):
        self.model, self.logps, self.device, self.table = model, logps, device, table

    @torch.no_grad()
    def __call__(self, batch: PairBatch, split: str) -> torch.Tensor:
        if self.table is not None:
            return self.table[split][batch.pair_ids].flatten().to(self.device)
        with self.model.disable_adapter():
            return self.logps(batch)


def _precomputed(layout: RunLayout, logps: SequenceLogProbs, batches: PairBatches, cb: Callbacks):
    """The starting model's log-probabilities of every pair, computed once (and reused when the run resumes)."""
    path = layout.root / REFERENCE_LOGPS
    sizes = {"train": len(batches.examples), "validation": len(batches.val)}
    if path.exists():
        table = load_file(str(path))
        if {k: v.shape[0] for k, v in table.items()} == sizes:
            return table
    cb.on_message(f"computing the reference model's log-probabilities of {sum(sizes.values())} pairs")
    table = {}
    was_training = logps.training
    logps.eval()
    with torch.no_grad():
        for split, pairs in (("train", batches.examples), ("validation", batches.val)):
            out = torch.zeros(len(pairs), 2, dtype=torch.float32)
            for batch in batches.micro_batches(pairs):
                out[batch.pair_ids] = logps(batch.to(batches.device)).view(-1, 2).float().cpu()
            table[split] = out
    logps.train(was_training)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(table, str(tmp))
    Path(tmp).replace(path)
    return table


# --- 4: train ----------------------------------------------------------------------------------------------------


def _optimizer_step(run: PreferenceRun) -> tuple[dict, int, float]:
    """One optimizer step over the step's pairs: (train metrics, tokens processed, the learning rate it used)."""
    micro_batches = run.batches.step(run.state.step)
    totals = preference_backward(
        run.logps, lambda mb: run.reference(mb, "train"), micro_batches, _beta(run), run.device
    )
    if run.config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(run.params, run.config.max_grad_norm)
    lr_now = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return totals.metrics("train"), sum(mb.packed.num_tokens for mb in micro_batches), lr_now


def _beta(run: PreferenceRun) -> float:
    assert run.plan.beta is not None  # resolve_plan sets it for preference runs
    return run.plan.beta


@torch.no_grad()
def evaluate_pairs(run: PreferenceRun, batches: list[PairBatch], split: str) -> dict:
    """Loss, reward accuracy and rewards over ``batches`` (eval_* metrics)."""
    totals = PreferenceTotals(run.device)
    for mb in batches:
        mb = mb.to(run.device)
        totals.add(*dpo_loss(run.logps(mb), run.reference(mb, split), _beta(run)))
    return totals.metrics("eval")


def _evaluate(run: PreferenceRun, result: RunResult, writer: MetricsWriter | None, cb: Callbacks) -> None:
    was_training = run.logps.training
    run.logps.eval()
    ev = evaluate_pairs(run, run.batches.validation, "validation")
    run.logps.train(was_training)
    record_evaluation(run, result, writer, cb, ev, -ev["eval_total_loss"], "eval loss")
