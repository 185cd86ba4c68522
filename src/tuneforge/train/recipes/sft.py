"""Supervised fine-tuning: the one recipe behind tuningJobs, the CLI and the demo.

Method, top to bottom:
1. Resolve the model (catalog id, custom base or an earlier run's output) and its limits for the tuning mode.
2. Read, validate and tokenise the datasets with the model's chat template. Any error stops the run here, before
   weights are loaded, with every problem listed.
3. Resolve hyperparameters (catalog defaults x the caller's values) and write the resolved config and data stats.
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
from tuneforge.data import (
    IGNORE_INDEX,
    Batch,
    ChatEncoder,
    Limits,
    Report,
    collate,
    prepare_dataset,
)
from tuneforge.data.stats import supervised_tuning_data_stats
from tuneforge.errors import DatasetInvalid, InvalidArgument
from tuneforge.settings import Settings, get_settings
from tuneforge.train.artifacts import (
    CONFIG,
    RunLayout,
    replace_dir,
    write_json,
    write_manifest,
)
from tuneforge.train.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    load_trainable,
    prune_checkpoints,
    save_checkpoint,
    save_trainable,
)
from tuneforge.train.config import EXPLAIN_PREFIX, PREDICT_PREFIX, TuningConfig
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
    pack,
    plan_micro_batches,
    row_tokens_for,
    step_task_scale,
    task_counts,
)
from tuneforge.train.loading import (
    ModelSource,
    attention_implementation,
    chat_encoder,
    empty_model,
    limits_for,
    load_model,
    load_tokenizer,
    pick_device,
    pick_dtype,
    resolve_source,
)
from tuneforge.train.lora import apply_lora, load_adapter
from tuneforge.train.metrics import MetricsWriter, eval_metrics, train_metrics
from tuneforge.train.schedule import lr_factor


class Callbacks:
    """Hooks for progress display and the service; all optional."""

    def on_start(self, total_steps: int, start_step: int, info: dict) -> None: ...
    def on_step(self, step: int, total_steps: int, metrics: dict) -> None: ...
    def on_eval(self, step: int, metrics: dict) -> None: ...
    def on_message(self, message: str) -> None: ...


@dataclass
class RunResult:
    output_dir: Path
    final_dir: Path | None
    steps: int
    total_steps: int
    last_train: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    best_eval: dict = field(default_factory=dict)
    stopped_early: bool = False
    cancelled: bool = False
    resumed_from: int = 0
    data_stats: dict = field(default_factory=dict)
    resolved: dict = field(default_factory=dict)


# --- 1-3: model, data, hyperparameters ---------------------------------------------------------------------------

def _datasets(config: TuningConfig, limits: Limits, encoder: ChatEncoder, settings: Settings):
    def prepare(uri):
        return prepare_dataset(uri, limits, encoder, settings=settings, expected=config.dataset_format,
                               default_system=config.default_context)

    train = prepare(config.train_dataset)
    val = prepare(config.validation_dataset) if config.validation_dataset else None
    if config.rationale_weight is not None:  # distillation step-by-step: "explain: " examples are the second task
        for dataset in (train, val):
            by_line = {c.line: c for c in (dataset.conversations if dataset else [])}
            for example in dataset.examples if dataset else []:
                first_user = next(m for m in by_line[example.line].messages if m.role == "user")
                example.task = int(first_user.text.startswith(EXPLAIN_PREFIX))
    combined = Report(source="datasets", problems=train.report.problems + (val.report.problems if val else []))
    if combined.errors:
        raise DatasetInvalid(
            f"{len(combined.errors)} error(s) in the dataset(s); nothing was trained. Fix every line listed "
            f"(`tuneforge validate FILE --model {config.base_model}` prints the same report)", combined
        )
    return train, val, combined


def _use_packing(setting: str, lengths: list[int], micro: int) -> bool:
    """auto: pack when padding would waste at least a quarter of the compute (micro-batches of similar order)."""
    if setting != "auto":
        return setting == "on"
    if micro <= 1 or not lengths:
        return False
    padded = sum(max(lengths[i : i + micro]) * len(lengths[i : i + micro]) for i in range(0, len(lengths), micro))
    return padded >= 1.33 * sum(lengths)


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


# --- 5: the training step ----------------------------------------------------------------------------------------

def batch_loss(model, batch: Batch, device: torch.device) -> tuple[torch.Tensor, int, list[int]]:
    """(sum of token losses per task [NUM_TASKS], correct next-token predictions, target tokens per task) for one
    micro-batch.

    No 2-D attention mask is passed: position ids restarting per example make transformers build the
    block-diagonal causal mask for packed rows, and right padding is never attended by earlier tokens.
    """
    out = model(
        input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device), use_cache=False
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


def train_step(model, micro_batches: list[Batch], device: torch.device, task_weights: tuple[float, ...] = (1.0, 0.0)) -> dict:
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


# --- 6: export ---------------------------------------------------------------------------------------------------

def _end_ids(tokenizer, end_of_turn: str) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(end_of_turn)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [i for i in ids if i is not None and i >= 0]


def export_final(model, tokenizer, encoder: ChatEncoder, source: ModelSource, layout: RunLayout,
                 record: dict, *, lora: bool, merged: bool, state_dict: dict | None = None) -> Path:
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
    tokenizer.save_pretrained(str(tmp))
    gen.save_pretrained(str(tmp))
    if lora:
        # Plain peft finds the base by this path: PeftModel.from_pretrained(AutoModel...(base), final).
        cfg_path = tmp / "adapter_config.json"
        adapter_cfg = json.loads(cfg_path.read_text())
        adapter_cfg["base_model_name_or_path"] = str(source.base_dir)
        cfg_path.write_text(json.dumps(adapter_cfg, indent=2))
    write_json(tmp / CONFIG, record)
    if lora and merged:
        merged_dir = tmp / "merged"
        full = model.merge_and_unload()  # last use of the model: merging changes it in place
        full.generation_config = gen
        full.save_pretrained(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
        write_json(merged_dir / CONFIG, record)
        write_manifest(merged_dir, kind="full", base_model=record["model"])
    write_manifest(tmp, kind="lora" if lora else "full", base_model=record["model"])
    replace_dir(tmp, layout.final)
    return layout.final


# --- the recipe --------------------------------------------------------------------------------------------------

def run_sft(
    config: TuningConfig,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    callbacks: Callbacks | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    settings = settings or get_settings()
    catalog = catalog or load_catalog(settings)
    cb = callbacks or Callbacks()
    dev = settings.dev if config.dev is None else config.dev
    mode = config.tuning_mode

    # 1. Model and limits.
    source = resolve_source(catalog, config.base_model, config.custom_base_model, dev=dev, settings=settings)
    entry = source.resolved.entry
    limits = limits_for(entry, config.base_model, mode, config.strict_length)
    mode_spec = entry.modes[mode]
    if source.resolved.note:
        cb.on_message(source.resolved.note)

    # 2. Data, validated and tokenised before any weights are loaded.
    tokenizer = load_tokenizer(source)
    encoder = chat_encoder(source, tokenizer)
    train, val, report = _datasets(config, limits, encoder, settings)
    for warning in report.warnings:
        cb.on_message(f"warning: {warning}")

    # 3. Hyperparameters, resolved once and saved.
    n = len(train.examples)
    defaults = entry.defaults
    batch_size = min(config.batch_size or defaults.batch_size, n)
    micro = min(config.micro_batch_size or batch_size, batch_size)
    steps_per_epoch = math.ceil(n / batch_size)
    epochs = config.epochs or defaults.epochs
    total_steps = config.max_steps or max(1, math.ceil(epochs * steps_per_epoch))
    epochs_effective = total_steps / steps_per_epoch if config.max_steps is None else total_steps * batch_size / n
    lr = config.learning_rate or mode_spec.learning_rate * (config.learning_rate_multiplier or 1.0)
    rank = config.adapter_size or defaults.adapter_size
    alpha = config.lora_alpha or 2.0 * rank
    warmup_steps = round(config.warmup_ratio * total_steps)
    eval_steps = config.eval_steps or max(1, total_steps // 10)
    save_steps = config.save_steps or steps_per_epoch
    lengths = [len(train.examples[i]) for i in _epoch_order(n, config.seed, 0)]
    packing = _use_packing(config.packing, lengths, micro)
    row_tokens = max(mode_spec.max_seq_len, max(lengths))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    lora = mode == TuningMode.PEFT_ADAPTER
    if processes_from_env() > 1 and (lora or not config.fast_path):  # checked before joining the process group
        raise InvalidArgument("runs of several processes shard FULL tuning on the fast path; run PEFT_ADAPTER (or "
                              "fast_path=false) in one process")
    world = world_from_env(config.device)  # torchrun with several processes: FULL tuning sharded with FSDP2
    device = device_for(world, pick_device(config.device))
    dtype = pick_dtype(config.dtype, device)
    if not world.main:
        cb = Callbacks()  # rank 0 reports progress and writes files; the others compute
    task_weights = (1.0, config.rationale_weight or 0.0)

    out_dir = storage.output_dir(config.output_uri, settings)
    layout = RunLayout(out_dir)
    record = {
        "request": config.model_dump(mode="json"),
        "model": source.describe(),
        "resolved": {
            "tuning_mode": mode.value, "max_seq_len": mode_spec.max_seq_len, "epochs": epochs,
            "epochs_effective": epochs_effective, "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size, "micro_batch_size": micro, "gradient_accumulation": math.ceil(batch_size / micro),
            "learning_rate": lr, "warmup_steps": warmup_steps, "lr_scheduler": config.lr_scheduler,
            "adapter_size": rank if lora else None, "lora_alpha": alpha if lora else None,
            "eval_steps": eval_steps if val else None, "save_steps": save_steps, "packing": packing,
            "processes": world.size,
            "device": str(device), "dtype": str(dtype).removeprefix("torch."),
            "train_examples": n, "validation_examples": len(val.examples) if val else 0,
        },
        "versions": {"tuneforge": tuneforge.__version__, "torch": torch.__version__,
                     "transformers": _version("transformers"), "peft": _version("peft")},
    }
    # How serving must shape prompts so they look like the training data (applied by serve/, saved with the model).
    record["serving"] = {"default_system": config.default_context,
                         "input_prefix": PREDICT_PREFIX if config.rationale_weight is not None else None,
                         "task_prefixes": [PREDICT_PREFIX, EXPLAIN_PREFIX] if config.rationale_weight is not None else []}
    _check_same_run(layout, record)
    data_stats = supervised_tuning_data_stats(
        train.examples, train.conversations, epochs=epochs_effective, steps=total_steps, dropped=train.dropped
    )
    if world.main:
        write_json(layout.root / CONFIG, record)
        write_json(layout.data_stats, {"supervisedTuningDataStats": data_stats})
        write_json(layout.validation_report, report.to_json())

    # 4. Model (+ LoRA), optimizer, schedule; resume if a checkpoint exists.
    torch.manual_seed(config.seed)
    random.seed(config.seed)
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
        model = apply_lora(model, rank, alpha, config.lora_dropout)
    if not lora:
        model.requires_grad_(True)  # FULL trains every weight (peft leaves merged base weights frozen)
    model.train()
    loss_module = _fast_path(model, config, world, device, cb)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(params, lr, config.weight_decay, fused=loss_module is not None, device=device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup_steps, config.lr_scheduler, config.min_lr_ratio)
    )
    state = TrainerState()
    resume = latest_checkpoint(layout)
    if resume is not None:
        state = load_checkpoint(resume, model, optimizer, scheduler)
        cb.on_message(f"resuming from {resume.name} (step {state.step})")
    resumed_from = state.step

    # The fast path packs each step's examples by a token budget; the reference path collates fixed micro-batches.
    longest = max(len(e) for e in train.examples + (val.examples if val else []))
    budget = config.micro_batch_tokens or micro * longest
    rows = row_tokens_for(getattr(model.config, "_attn_implementation", None), longest)
    pin = device.type == "cuda"

    def step_examples(step: int):
        epoch, index = divmod(step, steps_per_epoch)
        order = _epoch_order(n, config.seed, epoch)
        return [train.examples[i] for i in order[index * batch_size : (index + 1) * batch_size]]

    def fast_step_batches(step: int):
        packed = [pack(group, pad_id, rows, pin=pin) for group in plan_micro_batches(step_examples(step), budget)]
        return share_out(packed, world, pad_id), task_counts(packed), sum(p.num_tokens for p in packed)

    val_batches = []
    if val is not None and loss_module is not None:
        val_batches = [pack(group, pad_id, rows).to(device) for group in plan_micro_batches(val.examples, budget)]
    elif val is not None:
        val_batches = [collate(val.examples[i : i + micro], pad_id, packing=packing, row_tokens=row_tokens)
                       for i in range(0, len(val.examples), micro)]
    extra_tb = None
    if config.tensorboard:
        extra_tb = settings.home / "tensorboards" / config.tensorboard.rstrip("/").rsplit("/", 1)[-1] / out_dir.name
    writer = MetricsWriter(layout.metrics, layout.tensorboard, resume_step=state.step,
                           extra_tensorboard_dir=extra_tb) if world.main else None
    cb.on_start(total_steps, state.step, record["resolved"])
    prefetch = Prefetcher(fast_step_batches, state.step, total_steps) if loss_module is not None else None
    upcoming = iter(prefetch) if prefetch is not None else None

    # 5. Train.
    result = RunResult(output_dir=out_dir, final_dir=None, steps=state.step, total_steps=total_steps,
                       resumed_from=resumed_from, data_stats=data_stats, resolved=record)
    try:
        while state.step < total_steps:
            started = time.perf_counter()
            if upcoming is not None:
                _, (mine, counts, tokens) = next(upcoming)
                scale, _ = step_task_scale(mine, task_weights, total_counts=counts, world_size=world.size)
                sync = loss_module.set_requires_gradient_sync if world.sharded else None
                totals = fast_train_step(loss_module, [mb.to(device) for mb in mine], scale, sync)
            else:
                picked = step_examples(state.step)
                micro_batches = [collate(picked[i : i + micro], pad_id, packing=packing, row_tokens=row_tokens)
                                 for i in range(0, len(picked), micro)]
                metrics = train_step(model, micro_batches, device, task_weights)
                tokens = sum(mb.num_tokens for mb in micro_batches)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            lr_now = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if upcoming is not None:  # the step's one read of device values
                metrics = _read_step_metrics(totals, counts, task_weights, world)
            state.step += 1
            elapsed = time.perf_counter() - started
            if writer is not None:
                writer.log(state.step, metrics, epoch=state.step / steps_per_epoch, learning_rate=lr_now,
                           tokens_per_second=tokens / max(elapsed, 1e-9))
            result.last_train = metrics
            cb.on_step(state.step, total_steps, {**metrics, "tokens_per_second": tokens / max(elapsed, 1e-9),
                                                "step_tokens": tokens})

            if val_batches and (state.step % eval_steps == 0 or state.step == total_steps):
                ev = fast_evaluate(loss_module, val_batches) if loss_module is not None else evaluate(model, val_batches, device)
                if writer is not None:
                    writer.log(state.step, ev, epoch=state.step / steps_per_epoch)
                result.last_eval = ev
                cb.on_eval(state.step, ev)
                score = ev["eval_fraction_of_correct_next_step_preds"]
                better = state.best_score is None or score > state.best_score + config.early_stopping_min_delta
                if world.agree(better):
                    state.best_score, state.best_step, state.bad_evals = score, state.step, 0
                    state.best_eval = ev
                    if config.checkpoint_selection == "best":
                        save_trainable(model, layout.best)
                else:
                    state.bad_evals += 1
                    if config.early_stopping and state.bad_evals >= config.early_stopping_patience:
                        result.stopped_early = True
                        cb.on_message(f"early stopping at step {state.step}: no gain in eval token accuracy for "
                                      f"{state.bad_evals} evaluations (best at step {state.best_step})")

            stopping = world.agree(result.stopped_early or (should_stop is not None and should_stop()))
            if state.step % save_steps == 0 or state.step % steps_per_epoch == 0 or stopping:
                if state.step < total_steps or stopping:
                    save_checkpoint(layout.step_dir(state.step), model, optimizer, scheduler, state)
                    if world.main:
                        prune_checkpoints(layout, config.keep_checkpoints)
            if stopping:
                if not result.stopped_early:
                    result.cancelled = True
                    cb.on_message(f"stopped at step {state.step}; rerun with the same output to resume")
                break
    finally:
        if prefetch is not None:
            prefetch.close()
        if writer is not None:
            writer.close()
    result.steps = state.step
    result.best_eval = state.best_eval or {}
    if result.cancelled:
        return result

    # 6. Export.
    if config.checkpoint_selection == "best" and state.best_step not in (None, state.step):
        load_trainable(model, layout.best)
        cb.on_message(f"final model: the best checkpoint (step {state.best_step})")
    use_best = config.checkpoint_selection == "best" and state.best_step is not None
    record["final"] = {"step": state.best_step if use_best else state.step, "stopped_early": result.stopped_early,
                       "best_eval": state.best_eval}
    if world.sharded:  # every process gathers the weights; rank 0 writes them
        weights = full_state_dict(model)
        if world.main:
            result.final_dir = export_final(model, tokenizer, encoder, source, layout, record, lora=False,
                                            merged=False, state_dict=weights)
        world.barrier()
    else:
        result.final_dir = export_final(model, tokenizer, encoder, source, layout, record, lora=lora,
                                        merged=config.export_merged)
    if world.main:
        write_json(layout.root / CONFIG, record)
        storage.publish(out_dir, config.output_uri, settings)
    return result


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
    _apply_liger_kernel_to_instance(model=base, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)


def _optimizer(params, lr: float, weight_decay: float, *, fused: bool, device: torch.device):
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


def _check_same_run(layout: RunLayout, record: dict) -> None:
    """Resuming into an output folder is only safe when it holds the same run."""
    path = layout.root / CONFIG
    if not path.exists() or latest_checkpoint(layout) is None:
        return
    previous = json.loads(path.read_text())
    keys = ("request", "resolved")
    ignore = {"device", "dtype"}
    before = {k: {kk: vv for kk, vv in previous.get(k, {}).items() if kk not in ignore} for k in keys}
    now = {k: {kk: vv for kk, vv in record[k].items() if kk not in ignore} for k in keys}
    if before != now:
        raise InvalidArgument(
            f"{layout.root} holds checkpoints of a different run (its tuneforge_config.json differs); use a new "
            "output_uri, or delete that folder to start over"
        )
