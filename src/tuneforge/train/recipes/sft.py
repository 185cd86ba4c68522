"""Supervised fine-tuning: the one recipe behind tuningJobs, the CLI and the demo.

Method, top to bottom:
1. Resolve the model (catalog id, custom base or an earlier run's output) and its limits for the tuning mode.
2. Read, validate and tokenise the datasets with the model's chat template. Any error stops the run here, before
   weights are loaded, with every problem listed.
3. Resolve hyperparameters (catalog defaults x the caller's values) and write the resolved config and data stats.
   An output that already holds this run's final model is reused as it is.
4. Load the model; wrap it in LoRA for PEFT_ADAPTER. Resume from the last checkpoint in the output folder if any.
5. Train: AdamW, linear warm-up then decay, gradient accumulation normalised per target token across micro-batches,
   short examples packed into shared rows. Evaluate every ``eval_steps``; keep the best checkpoint; stop early
   when asked to. Save a resumable checkpoint every epoch and every ``save_steps``.
6. Export the final model (best or last) to ``<output>/postprocess/node-0/checkpoints/final`` with tokenizer,
   chat template, resolved config and a manifest of hashes.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import tuneforge
from tuneforge import storage
from tuneforge.catalog import TuningMode, load_catalog
from tuneforge.catalog.catalog import Catalog
from tuneforge.catalog.model_folder import ADAPTER_CONFIG, read_record
from tuneforge.data import IGNORE_INDEX, Batch, ChatEncoder, PreparedDataset, collate
from tuneforge.data.stats import supervised_tuning_data_stats
from tuneforge.devices import pick_device, pick_dtype
from tuneforge.errors import InvalidArgument
from tuneforge.settings import Settings, get_settings
from tuneforge.train.artifacts import (
    CONFIG,
    RunLayout,
    replace_dir,
    verify_manifest,
    write_json,
    write_manifest,
)
from tuneforge.train.callbacks import Callbacks
from tuneforge.train.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    load_trainable,
    prune_checkpoints,
    save_checkpoint,
    save_trainable,
)
from tuneforge.train.config import EXPLAIN_PREFIX, PREDICT_PREFIX, ResolvedRun, TuningConfig
from tuneforge.train.distributed import (
    World,
    device_for,
    full_state_dict,
    processes_from_env,
    shard,
    share_out,
    world_from_env,
)
from tuneforge.train.fastpath import (
    NUM_TASKS,
    CausalLMLoss,
    Prefetcher,
    fast_evaluate,
    fast_loss_supported,
    fast_train_step,
    image_kwargs,
    pack,
    plan_micro_batches,
    row_tokens_for,
    step_task_scale,
    task_counts,
)
from tuneforge.train.loading import (
    ModelSource,
    attention_implementation,
    empty_model,
    load_model,
)
from tuneforge.train.lora import apply_lora, load_adapter
from tuneforge.train.metrics import MetricsWriter, eval_metrics, read_metrics, train_metrics
from tuneforge.train.preflight import Preflight, check_datasets
from tuneforge.train.schedule import lr_factor

STATS_KEY = "supervisedTuningDataStats"  # where a supervised run's statistics go in TuningDataStats


@dataclass
class RunResult:
    """What a run hands its caller (the worker, the pipeline's tune task, the CLI)."""

    output_dir: Path
    final_dir: Path | None
    steps: int
    total_steps: int
    resolved: ResolvedRun
    record: dict = field(default_factory=dict)  # the model's tuneforge_config.json
    last_train: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    best_eval: dict = field(default_factory=dict)
    stopped_early: bool = False
    cancelled: bool = False
    resumed_from: int = 0
    final_step: int | None = None  # the step the exported model is from (the best checkpoint's, or the last)
    reused: bool = False  # the output already held this run's final model
    data_stats: dict = field(default_factory=dict)
    stats_key: str = STATS_KEY  # where data_stats go in TuningDataStats

    @classmethod
    def starting(cls, run, record: dict, stats_key: str, data_stats: dict) -> RunResult:
        """The result of a run about to train (``run``: what a recipe's ``build`` returned)."""
        return cls(
            output_dir=run.layout.root,
            final_dir=None,
            steps=run.state.step,
            total_steps=run.plan.total_steps,
            resumed_from=run.state.step,
            data_stats=data_stats,
            stats_key=stats_key,
            resolved=run.plan,
            record=record,
        )


# --- the recipe --------------------------------------------------------------------------------------------------


def run_sft(
    config: TuningConfig,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    callbacks: Callbacks | None = None,
    should_stop: Callable[[], bool] | None = None,
    access: storage.Access | None = None,
) -> RunResult:
    """Resolve the model and data, build the model and optimizer, train, export: the method of the module docstring.
    ``access``: the job's project's view of the buckets, which the images its lines name are read with."""
    settings = settings or get_settings()
    cb = callbacks or Callbacks()
    data = resolve_data(config, settings, catalog or load_catalog(settings), cb, access)  # 1-2
    world, device, dtype = setup_world(config)
    if not world.main:
        cb = Callbacks()  # rank 0 reports progress and writes files; the others compute
    plan = resolve_plan(config, data, world, device, dtype)  # 3
    layout = RunLayout(storage.output_dir(config.output_uri, settings))
    record = run_record(config, data, plan)
    check_same_run(layout, record)
    finished = finished_run(layout, record, cb)
    if finished is not None:
        return finished
    data_stats = supervised_stats(data, plan)
    if world.main:
        write_run_files(layout, record, data, STATS_KEY, data_stats)
    run = build(config, data, plan, layout, world, device, dtype, cb)  # 4
    result = RunResult.starting(run, record, STATS_KEY, data_stats)
    train(run, result, settings, cb, should_stop)  # 5
    if not result.cancelled:
        result.final_dir = export(run, result, record, cb)  # 6
        if world.main:
            storage.publish(layout.root, config.output_uri, settings)
    return result


# --- 1-3: model, data, hyperparameters ---------------------------------------------------------------------------


def resolve_data(
    config: TuningConfig, settings: Settings, catalog: Catalog, cb: Callbacks, access: storage.Access | None = None
) -> Preflight:
    """The model and its limits; both datasets read, validated and tokenised before any weights are loaded."""
    data = check_datasets(config, settings=settings, catalog=catalog, access=access)
    if data.source.resolved.note:
        cb.on_message(data.source.resolved.note)
    for warning in data.report.warnings:
        cb.on_message(f"warning: {warning}")
    if config.rationale_weight is not None:  # distillation step-by-step: "explain: " examples are the second task
        for dataset in (data.train, data.validation):
            by_line = {c.line: c for c in (dataset.conversations if dataset else [])}
            for example in dataset.examples if dataset else []:
                first_user = next(m for m in by_line[example.line].messages if m.role == "user")
                example.task = int(first_user.text.startswith(EXPLAIN_PREFIX))
    return data


def setup_world(config: TuningConfig) -> tuple[World, torch.device, torch.dtype]:
    """The processes of this run (torchrun with several: FULL tuning sharded with FSDP2), its device and dtype."""
    if processes_from_env() > 1 and (config.tuning_mode == TuningMode.PEFT_ADAPTER or not config.fast_path):
        # checked before joining the process group
        raise InvalidArgument(
            "runs of several processes shard FULL tuning on the fast path; run PEFT_ADAPTER (or "
            "fast_path=false) in one process"
        )
    world = world_from_env(config.device)
    device = device_for(world, pick_device(config.device))
    return world, device, pick_dtype(config.dtype, device)


def resolve_plan(
    config: TuningConfig, data: Preflight, world: World, device: torch.device, dtype: torch.dtype
) -> ResolvedRun:
    """Catalog defaults x the caller's values, resolved once; saved with the model and compared on resume."""
    entry = data.source.resolved.entry
    mode_spec = entry.modes[config.tuning_mode]
    defaults = entry.defaults
    n = len(data.train.examples)
    batch_size = min(config.batch_size or defaults.batch_size, n)
    micro = min(config.micro_batch_size or batch_size, batch_size)
    steps_per_epoch = math.ceil(n / batch_size)
    epochs = config.epochs or defaults.epochs
    total_steps = config.max_steps or max(1, math.ceil(epochs * steps_per_epoch))
    lora = config.tuning_mode == TuningMode.PEFT_ADAPTER
    rank = config.adapter_size or defaults.adapter_size
    lengths = [len(data.train.examples[i]) for i in epoch_order(n, config.seed, 0)]
    return ResolvedRun(
        tuning_mode=config.tuning_mode.value,
        max_seq_len=mode_spec.max_seq_len,
        epochs=epochs,
        epochs_effective=total_steps / steps_per_epoch if config.max_steps is None else total_steps * batch_size / n,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        micro_batch_size=micro,
        gradient_accumulation=math.ceil(batch_size / micro),
        learning_rate=config.learning_rate or mode_spec.rate(config.method) * (config.learning_rate_multiplier or 1.0),
        warmup_steps=round(config.warmup_ratio * total_steps),
        lr_scheduler=config.lr_scheduler,
        adapter_size=rank if lora else None,
        lora_alpha=(config.lora_alpha or 2.0 * rank) if lora else None,
        eval_steps=(config.eval_steps or max(1, total_steps // 10)) if data.validation else None,
        save_steps=config.save_steps or steps_per_epoch,
        packing=_use_packing(config.packing, lengths, micro),
        processes=world.size,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        train_examples=n,
        validation_examples=len(data.validation.examples) if data.validation else 0,
        beta=(config.beta or entry.defaults.beta) if config.method == "preference" else None,
    )


def supervised_stats(data: Preflight, plan: ResolvedRun) -> dict:
    """The ``supervisedTuningDataStats`` of the run's training set as it will be trained (the job reports them)."""
    assert isinstance(data.train, PreparedDataset)  # supervised lines (preference pairs go to the DPO recipe)
    return supervised_tuning_data_stats(
        data.train.examples,
        data.train.conversations,
        epochs=plan.epochs_effective,
        steps=plan.total_steps,
        dropped=data.train.dropped,
    )


def run_record(config: TuningConfig, data: Preflight, plan: ResolvedRun) -> dict:
    """What ``tuneforge_config.json`` holds: the request, the model, the resolved plan, versions, serving rules."""
    distill = config.rationale_weight is not None
    return {
        "request": config.model_dump(mode="json"),
        "model": data.source.describe(),
        "resolved": plan.model_dump(mode="json"),
        "versions": {
            "tuneforge": tuneforge.__version__,
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "peft": _version("peft"),
        },
        # How serving must shape prompts so they look like the training data (applied by serve/, saved with the model).
        "serving": {
            "default_system": config.default_context,
            "input_prefix": PREDICT_PREFIX if distill else None,
            "task_prefixes": [PREDICT_PREFIX, EXPLAIN_PREFIX] if distill else [],
        },
    }


def write_run_files(layout: RunLayout, record: dict, data: Preflight, stats_key: str, data_stats: dict) -> None:
    """What a run writes before it trains: its record, its data stats and its datasets' validation report."""
    write_json(layout.root / CONFIG, record)
    write_json(layout.data_stats, {stats_key: data_stats})
    write_json(layout.validation_report, data.report.to_json())


# --- 4: model, optimizer, batches, resume ------------------------------------------------------------------------


@dataclass
class Run:
    """What ``build`` sets up for the training loop."""

    config: TuningConfig
    plan: ResolvedRun
    data: Preflight
    layout: RunLayout
    world: World
    device: torch.device
    model: torch.nn.Module
    loss_module: CausalLMLoss | None  # None: the reference step
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: TrainerState
    batches: StepBatches
    task_weights: tuple[float, float]


def build(
    config: TuningConfig,
    data: Preflight,
    plan: ResolvedRun,
    layout: RunLayout,
    world: World,
    device: torch.device,
    dtype: torch.dtype,
    cb: Callbacks,
) -> Run:
    """Model (+ LoRA), fast-path loss, optimizer and schedule; resumed from the output's last checkpoint if any."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    model = setup_model(config, data.source, plan, world, device, dtype)
    loss_module = _fast_path(model, config, world, device, cb)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(
        params, plan.learning_rate, config.weight_decay, fused=loss_module is not None, device=device
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, plan.total_steps, plan.warmup_steps, config.lr_scheduler, config.min_lr_ratio)
    )
    state = TrainerState()
    resume = latest_checkpoint(layout)
    if resume is not None:
        state = load_checkpoint(resume, model, optimizer, scheduler)
        cb.on_message(f"resuming from {resume.name} (step {state.step}) in {layout.root}")
    batches = StepBatches(config, plan, data, model, world, device, fast=loss_module is not None)
    return Run(
        config,
        plan,
        data,
        layout,
        world,
        device,
        model,
        loss_module,
        params,
        optimizer,
        scheduler,
        state,
        batches,
        (1.0, config.rationale_weight or 0.0),
    )


def setup_model(
    config: TuningConfig, source: ModelSource, plan: ResolvedRun, world: World, device: torch.device, dtype: torch.dtype
) -> torch.nn.Module:
    lora = config.tuning_mode == TuningMode.PEFT_ADAPTER
    attention = attention_implementation(config.attention, device)
    if world.sharded and not world.main:
        model = empty_model(source.base_dir, dtype, attention)  # rank 0 broadcasts the weights (distributed.shard)
    else:  # sharded: rank 0 reads the weights into host memory; sharding moves its units to the device
        model = load_model(source, torch.device("cpu") if world.sharded else device, dtype, attention)
    if source.adapter_dir is not None and world.main:
        model = load_adapter(model, source.adapter_dir, trainable=lora)
        if not lora:
            model = model.merge_and_unload()  # FULL continued from an adapter: start from the merged weights
    elif lora:
        assert plan.adapter_size is not None and plan.lora_alpha is not None
        experts = config.tune_experts if config.tune_experts is not None else not config.lora_dropout
        model = apply_lora(
            model, plan.adapter_size, plan.lora_alpha, config.lora_dropout, config.tune_vision_tower, experts
        )
    if not lora:
        model.requires_grad_(True)  # FULL trains every weight (peft leaves merged base weights frozen)
    model.train()
    return model


class StepBatches:
    """Each step's micro-batches and the validation batches. The fast path packs a step's examples by a token budget
    (prefetched on a thread); the reference path collates fixed micro-batches."""

    def __init__(
        self,
        config: TuningConfig,
        plan: ResolvedRun,
        data: Preflight,
        model: torch.nn.Module,
        world: World,
        device: torch.device,
        *,
        fast: bool,
    ):
        tokenizer = data.encoder.tokenizer
        self.config, self.plan, self.world, self.fast = config, plan, world, fast
        self.examples = data.train.examples
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        val = data.validation.examples if data.validation else []
        longest = max(len(e) for e in self.examples + val)
        self.budget = config.micro_batch_tokens or plan.micro_batch_size * longest
        self.rows = row_tokens_for(getattr(model.config, "_attn_implementation", None), longest)
        self.row_tokens = max(plan.max_seq_len, max(len(e) for e in self.examples))
        self.pin = device.type == "cuda"
        self.images = data.encoder.image_inputs if data.encoder.takes_images else None
        micro = plan.micro_batch_size
        if fast:
            self.validation = [
                pack(g, self.pad_id, self.rows, image_inputs=self.images).to(device)
                for g in plan_micro_batches(val, self.budget)
            ]
        else:
            self.validation = [self._collate(val[i : i + micro]) for i in range(0, len(val), micro)]

    def _collate(self, examples: list) -> Batch:
        return collate(
            examples, self.pad_id, packing=self.plan.packing, row_tokens=self.row_tokens, image_inputs=self.images
        )

    def step_examples(self, step: int) -> list:
        epoch, index = divmod(step, self.plan.steps_per_epoch)
        order = epoch_order(len(self.examples), self.config.seed, epoch)
        size = self.plan.batch_size
        return [self.examples[i] for i in order[index * size : (index + 1) * size]]

    def fast_step(self, step: int):
        """(this process's packed micro-batches, target tokens per task, tokens) of a fast-path step."""
        packed = [
            pack(group, self.pad_id, self.rows, pin=self.pin, image_inputs=self.images)
            for group in plan_micro_batches(self.step_examples(step), self.budget)
        ]
        return share_out(packed, self.world, self.pad_id), task_counts(packed), sum(p.num_tokens for p in packed)

    def reference_step(self, step: int) -> list[Batch]:
        picked, micro = self.step_examples(step), self.plan.micro_batch_size
        return [self._collate(picked[i : i + micro]) for i in range(0, len(picked), micro)]


# --- 5: train ----------------------------------------------------------------------------------------------------


def train(
    run: Run, result: RunResult, settings: Settings, cb: Callbacks, should_stop: Callable[[], bool] | None
) -> None:
    """Optimizer steps until the plan's total (or a stop): evaluate, checkpoint, stop early when asked to."""
    prefetch = (
        Prefetcher(run.batches.fast_step, run.state.step, run.plan.total_steps) if run.loss_module is not None else None
    )
    upcoming = iter(prefetch) if prefetch is not None else None
    try:
        train_loop(run, result, settings, cb, should_stop, lambda: _optimizer_step(run, upcoming), _evaluate)
    finally:
        if prefetch is not None:
            prefetch.close()


def train_loop(
    run,
    result: RunResult,
    settings: Settings,
    cb: Callbacks,
    should_stop: Callable[[], bool] | None,
    optimizer_step: Callable[[], tuple[dict, int, float]],
    evaluate: Callable,
) -> None:
    """The loop every recipe runs: ``optimizer_step()`` (its metrics, tokens and learning rate) until the plan's
    total or a stop; metrics to the writer and the callbacks; ``evaluate(run, result, writer, cb)`` every
    ``eval_steps``; a resumable checkpoint when due and when stopping."""
    plan, state = run.plan, run.state
    writer = metrics_writer(run, settings) if run.world.main else None
    cb.on_start(plan.total_steps, state.step, plan)
    try:
        while state.step < plan.total_steps:
            started = time.perf_counter()
            metrics, tokens, lr_now = optimizer_step()
            state.step += 1
            tps = tokens / max(time.perf_counter() - started, 1e-9)
            if writer is not None:
                writer.log(
                    state.step,
                    metrics,
                    epoch=state.step / plan.steps_per_epoch,
                    learning_rate=lr_now,
                    tokens_per_second=tps,
                )
            result.last_train = metrics
            cb.on_step(state.step, plan.total_steps, {**metrics, "tokens_per_second": tps, "step_tokens": tokens})
            if run.batches.validation and (state.step % (plan.eval_steps or 1) == 0 or state.step == plan.total_steps):
                evaluate(run, result, writer, cb)
            stopping = run.world.agree(result.stopped_early or (should_stop is not None and should_stop()))
            if save_due_checkpoint(run, stopping):
                cb.on_message(f"checkpoint saved at step {state.step}: a resumed run continues from it")
            if stopping:
                if not result.stopped_early:
                    result.cancelled = True
                    cb.on_message(f"stopped at step {state.step}; rerun with the same output to resume")
                break
    finally:
        if writer is not None:
            writer.close()
    result.steps = state.step
    result.best_eval = state.best_eval or {}


def metrics_writer(run: Run, settings: Settings) -> MetricsWriter:
    extra_tb = None
    if run.config.tensorboard:
        tb_id = run.config.tensorboard.rstrip("/").rsplit("/", 1)[-1]
        extra_tb = settings.home / "tensorboards" / tb_id / run.layout.root.name
    return MetricsWriter(
        run.layout.metrics, run.layout.tensorboard, resume_step=run.state.step, extra_tensorboard_dir=extra_tb
    )


def _optimizer_step(run: Run, upcoming) -> tuple[dict, int, float]:
    """One optimizer step: (train metrics, tokens processed, the learning rate it used)."""
    if upcoming is not None:
        _, (mine, counts, tokens) = next(upcoming)
        scale, _ = step_task_scale(mine, run.task_weights, total_counts=counts, world_size=run.world.size)
        sync = run.loss_module.set_requires_gradient_sync if run.world.sharded else None
        totals = fast_train_step(run.loss_module, [mb.to(run.device) for mb in mine], scale, sync)
    else:
        micro_batches = run.batches.reference_step(run.state.step)
        metrics = train_step(run.model, micro_batches, run.device, run.task_weights)
        tokens = sum(mb.num_tokens for mb in micro_batches)
    if run.config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(run.params, run.config.max_grad_norm)
    lr_now = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    if upcoming is not None:  # the step's one read of device values
        metrics = _read_step_metrics(totals, counts, run.task_weights, run.world)
    return metrics, tokens, lr_now


def _evaluate(run: Run, result: RunResult, writer: MetricsWriter | None, cb: Callbacks) -> None:
    """Evaluate the validation set; keep the best checkpoint; decide early stopping."""
    if run.loss_module is not None:
        ev = fast_evaluate(run.loss_module, run.batches.validation)
    else:
        ev = evaluate(run.model, run.batches.validation, run.device)
    record_evaluation(
        run, result, writer, cb, ev, ev["eval_fraction_of_correct_next_step_preds"], "eval token accuracy"
    )


def record_evaluation(
    run, result: RunResult, writer: MetricsWriter | None, cb: Callbacks, ev: dict, score: float, what: str
) -> None:
    """Log an evaluation; keep the best checkpoint by ``score`` (higher is better); decide early stopping."""
    config, state = run.config, run.state
    if writer is not None:
        writer.log(state.step, ev, epoch=state.step / run.plan.steps_per_epoch)
    result.last_eval = ev
    cb.on_eval(state.step, ev)
    better = state.best_score is None or score > state.best_score + config.early_stopping_min_delta
    if run.world.agree(better):
        state.best_score, state.best_step, state.bad_evals = score, state.step, 0
        state.best_eval = ev
        if config.checkpoint_selection == "best":
            save_trainable(run.model, run.layout.best)
        return
    state.bad_evals += 1
    if config.early_stopping and state.bad_evals >= config.early_stopping_patience:
        result.stopped_early = True
        cb.on_message(
            f"early stopping at step {state.step}: no gain in {what} for "
            f"{state.bad_evals} evaluations (best at step {state.best_step})"
        )


def save_due_checkpoint(run: Run, stopping: bool) -> bool:
    """A resumable checkpoint every ``save_steps``, at each epoch's end and when stopping (not at the last step:
    the export follows); whether one was saved."""
    step, plan = run.state.step, run.plan
    due = step % plan.save_steps == 0 or step % plan.steps_per_epoch == 0
    if not ((due and step < plan.total_steps) or stopping):
        return False
    save_checkpoint(run.layout.step_dir(step), run.model, run.optimizer, run.scheduler, run.state)
    if run.world.main:
        prune_checkpoints(run.layout, run.config.keep_checkpoints)
    return True


# --- 6: export ---------------------------------------------------------------------------------------------------


def export(run: Run, result: RunResult, record: dict, cb: Callbacks) -> Path | None:
    """The final model (the best checkpoint or the last step) with its record; rank 0 writes it."""
    config, state, layout, world = run.config, run.state, run.layout, run.world
    if config.checkpoint_selection == "best" and state.best_step not in (None, state.step):
        load_trainable(run.model, layout.best)
        cb.on_message(f"final model: the best checkpoint (step {state.best_step})")
    use_best = config.checkpoint_selection == "best" and state.best_step is not None
    record["final"] = {
        "step": state.best_step if use_best else state.step,
        "stopped_early": result.stopped_early,
        "best_eval": state.best_eval,
    }
    result.final_step = record["final"]["step"]
    tokenizer, encoder, source = run.data.encoder.tokenizer, run.data.encoder, run.data.source
    final_dir = None
    if world.sharded:  # every process gathers the weights; rank 0 writes them
        weights = full_state_dict(run.model)
        if world.main:
            final_dir = export_final(
                run.model, tokenizer, encoder, source, layout, record, lora=False, merged=False, state_dict=weights
            )
        world.barrier()
    else:
        final_dir = export_final(
            run.model,
            tokenizer,
            encoder,
            source,
            layout,
            record,
            lora=config.tuning_mode == TuningMode.PEFT_ADAPTER,
            merged=config.export_merged,
        )
    if world.main:
        write_json(layout.root / CONFIG, record)
    return final_dir


# --- the reference step (what the fast path is tested against; --reference-step runs it) --------------------


def batch_loss(model, batch: Batch, device: torch.device) -> tuple[torch.Tensor, int, list[int]]:
    """(sum of token losses per task [NUM_TASKS], correct next-token predictions, target tokens per task) for one
    micro-batch.

    No 2-D attention mask is passed: position ids restarting per example make transformers build the
    block-diagonal causal mask for packed rows, and right padding is never attended by earlier tokens.
    """
    images = {k: v.to(device) for k, v in batch.images.items()} if batch.images else None
    out = model(
        input_ids=batch.input_ids.to(device),
        position_ids=batch.position_ids.to(device),
        use_cache=False,
        **image_kwargs(model, images),
    )
    logits = out.logits[:, :-1, :]
    labels = batch.labels[:, 1:].to(device)
    mask = labels != IGNORE_INDEX
    picked = logits[mask].float()
    targets = labels[mask]
    token_loss = F.cross_entropy(picked, targets, reduction="none")
    tasks = batch.tasks[:, 1:].to(device)[mask] if batch.tasks is not None else torch.zeros_like(targets)
    sums = torch.zeros(NUM_TASKS, device=token_loss.device, dtype=token_loss.dtype).index_add(0, tasks, token_loss)
    correct = int((picked.argmax(-1) == targets).sum())
    return sums, correct, batch.task_target_tokens(NUM_TASKS)


def train_step(
    model, micro_batches: list[Batch], device: torch.device, task_weights: tuple[float, ...] = (1.0, 0.0)
) -> dict:
    """Forward/backward over micro-batches. Each task's loss is the mean over that task's target tokens of the whole
    step, so accumulating 4 x 2 examples gives the same gradient as 8 x 1 (and as 1 x 8); the step's loss is
    sum over tasks of weight x task loss (one task with weight 1 in plain SFT; label + lambda x rationale in
    distillation step-by-step)."""
    totals = [sum(c) for c in zip(*(mb.task_target_tokens(NUM_TASKS) for mb in micro_batches))]
    scale = torch.tensor([w / max(n, 1) for w, n in zip(task_weights, totals)])
    task_sums = torch.zeros(NUM_TASKS)
    correct_total = 0
    for mb in micro_batches:
        sums, correct, _ = batch_loss(model, mb, device)
        (sums * scale.to(sums.device)).sum().backward()
        task_sums += sums.detach().float().cpu()
        correct_total += correct
    return train_metrics(task_sums, correct_total, totals, task_weights)


@torch.no_grad()
def evaluate(model, batches: list[Batch], device: torch.device) -> dict:
    was_training = model.training
    model.eval()
    loss_total, correct_total, total = 0.0, 0, 0
    for mb in batches:
        sums, correct, counts = batch_loss(model, mb, device)
        loss_total += float(sums.sum())
        correct_total += correct
        total += sum(counts)
    model.train(was_training)
    return eval_metrics(loss_total, correct_total, total)


# --- the model folder ------------------------------------------------------------------------------------------


def _end_ids(tokenizer, end_of_turn: str) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(end_of_turn)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [i for i in ids if i is not None and i >= 0]


def export_final(
    model,
    tokenizer,
    encoder: ChatEncoder,
    source: ModelSource,
    layout: RunLayout,
    record: dict,
    *,
    lora: bool,
    merged: bool,
    state_dict: dict | None = None,
) -> Path:
    """Write the final model folder atomically (a reader never sees a half-written final/)."""
    from transformers import GenerationConfig

    tmp = layout.final.with_name(".final.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    end_ids = _end_ids(tokenizer, encoder.end_of_turn)
    base_model = getattr(model, "get_base_model", lambda: model)()
    gen = base_model.generation_config if base_model.generation_config is not None else GenerationConfig()
    gen.eos_token_id = end_ids if len(end_ids) > 1 else end_ids[0]
    if tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    tokenizer.chat_template = encoder.chat_template  # serving renders prompts exactly as training did
    model.save_pretrained(str(tmp), **({"state_dict": state_dict} if state_dict is not None else {}))
    _save_tokenizer(tokenizer, encoder, tmp)
    gen.save_pretrained(str(tmp))
    if lora:
        # Plain peft finds the base by this path: PeftModel.from_pretrained(AutoModel...(base), final).
        cfg_path = tmp / ADAPTER_CONFIG
        adapter_cfg = json.loads(cfg_path.read_text())
        adapter_cfg["base_model_name_or_path"] = str(source.base_dir)
        cfg_path.write_text(json.dumps(adapter_cfg, indent=2))
    write_json(tmp / CONFIG, record)
    if lora and merged:
        merged_dir = tmp / "merged"
        full = model.merge_and_unload()  # last use of the model: merging changes it in place
        full.generation_config = gen
        full.save_pretrained(str(merged_dir))
        _save_tokenizer(tokenizer, encoder, merged_dir)
        write_json(merged_dir / CONFIG, record)
        write_manifest(merged_dir, kind="full", base_model=record["model"])
    write_manifest(tmp, kind="lora" if lora else "full", base_model=record["model"])
    replace_dir(tmp, layout.final)
    return layout.final


def _save_tokenizer(tokenizer, encoder: ChatEncoder, folder: Path) -> None:
    """The tokenizer, and an image-text model's processor (AutoProcessor loads it from the model folder)."""
    tokenizer.save_pretrained(str(folder))
    if encoder.processor is not None:
        encoder.processor.chat_template = encoder.chat_template
        encoder.processor.save_pretrained(str(folder))


# --- helpers -----------------------------------------------------------------------------------------------------


def _use_packing(setting: str, lengths: list[int], micro: int) -> bool:
    """auto: pack when padding would waste at least a quarter of the compute (micro-batches of similar order)."""
    if setting != "auto":
        return setting == "on"
    if micro <= 1 or not lengths:
        return False
    padded = sum(max(lengths[i : i + micro]) * len(lengths[i : i + micro]) for i in range(0, len(lengths), micro))
    return padded >= 1.33 * sum(lengths)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _fast_path(model, config: TuningConfig, world: World, device: torch.device, cb: Callbacks) -> CausalLMLoss | None:
    """The fast step's loss module (None: the reference step), with the options that change how the model runs."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if config.activation_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.kernels == "liger":
        _apply_liger(base, device)
    if config.compile:
        for layer in base.get_decoder().layers:
            layer.compile(dynamic=True)
    if not config.fast_path:
        return None
    why = fast_loss_supported(base)
    if why is not None:
        if world.sharded:
            raise InvalidArgument(f"runs of several processes need the fast path, which this model cannot use: {why}")
        cb.on_message(f"the fast path is off for this model ({why}); training with the reference step")
        return None
    loss_module = CausalLMLoss(model)
    if world.sharded:
        shard(loss_module, device, world)
    return loss_module


def _apply_liger(base, device: torch.device) -> None:
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as exc:
        raise InvalidArgument("kernels=liger needs the liger-kernel package (pip install liger-kernel)") from exc
    if device.type != "cuda":
        raise InvalidArgument("kernels=liger runs on CUDA devices only; use kernels=none on the CPU")
    # Our own chunked loss replaces Liger's cross-entropy; its norm, rotary and MLP kernels are what we take.
    _apply_liger_kernel_to_instance(
        model=base, rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
    )


def make_optimizer(params, lr: float, weight_decay: float, *, fused: bool, device: torch.device):
    """AdamW; the fast path uses the fused (one kernel for every parameter) implementation where torch has it."""
    if fused:
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _read_step_metrics(totals: dict, counts: list[int], task_weights, world: World) -> dict:
    values = world.all_sum(torch.cat([totals["task_sums"].float(), totals["correct"].float()[None]]))
    host = values.cpu()
    return train_metrics(host[:NUM_TASKS], int(host[NUM_TASKS]), counts, task_weights)


def _version(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:  # pragma: no cover
        return "unknown"


def _comparable(record: dict) -> dict:
    """The parts of a record that make two runs the same run (the device and dtype may differ on a resume)."""
    ignore = {"device", "dtype"}
    return {k: {kk: vv for kk, vv in record.get(k, {}).items() if kk not in ignore} for k in ("request", "resolved")}


def check_same_run(layout: RunLayout, record: dict) -> None:
    """Resuming into an output folder is only safe when it holds the same run."""
    if latest_checkpoint(layout) is None:
        return
    previous = read_record(layout.root)
    if previous and _comparable(previous) != _comparable(record):
        raise InvalidArgument(
            f"{layout.root} holds checkpoints of a different run (its tuneforge_config.json differs); use a new "
            "output_uri, or delete that folder to start over"
        )


def finished_run(layout: RunLayout, record: dict, cb: Callbacks) -> RunResult | None:
    """The output already holds this run's exported model: reuse it instead of training again."""
    saved = read_record(layout.final)
    if not saved.get("final") or _comparable(saved) != _comparable(record) or verify_manifest(layout.final):
        return None
    final = saved["final"]
    cb.on_message(
        f"{layout.final} already holds this run's final model (step {final['step']}); reusing it. Use a "
        "new output, or delete the folder, to train again"
    )
    plan = ResolvedRun(**saved["resolved"])
    saved_stats = json.loads(layout.data_stats.read_text()) if layout.data_stats.exists() else {}
    stats_key, stats = next(iter(saved_stats.items()), (STATS_KEY, {}))
    train_lines = [m for m in read_metrics(layout.metrics) if "train_total_loss" in m]
    last = {k: v for k, v in train_lines[-1].items() if k.startswith("train_")} if train_lines else {}
    return RunResult(
        output_dir=layout.root,
        final_dir=layout.final,
        steps=plan.total_steps,
        total_steps=plan.total_steps,
        last_train=last,
        best_eval=final.get("best_eval") or {},
        stopped_early=bool(final.get("stopped_early")),
        data_stats=stats,
        stats_key=stats_key,
        resolved=plan,
        record=saved,
        final_step=final["step"],
        reused=True,
    )
