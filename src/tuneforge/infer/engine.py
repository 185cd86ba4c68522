"""The default serving engine, on transformers: continuous batching and many LoRA adapters on one loaded base.

Pieces:
- A **ModelGroup** is one set of weights in memory (a base model, or a fully tuned model) with one scheduler thread.
  LoRA adapters of the same base are loaded into the same group (peft, several named adapters) and each request
  picks its own: rows of one batch may use different adapters (peft's mixed-adapter forward), as LoRAX and vLLM do.
- The scheduler runs one decode step for all active rows at a time. Between steps it admits waiting requests:
  their prompts are prefilled together and their KV caches are joined to the running batch (left-padded to a common
  length), so a request never waits for a whole batch to finish. Finished and abandoned rows leave the batch at
  once. Models with windowed layers (Gemma 3's sliding window, Llama 4's chunked attention) cannot have caches
  joined safely; their groups admit new requests when the running batch drains (dynamic batching).
- The **Engine** maps deployed-model ids to (group, adapter, tokenizer) and refuses a load that would not fit.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tuneforge.catalog.model_folder import (
    auto_model_class,
    folder_bytes,
    has_processor,
    has_tokenizer,
    is_adapter,
    serving_rules,
    takes_images,
)
from tuneforge.devices import pick_device, pick_dtype
from tuneforge.errors import InvalidArgument, ResourceExhausted
from tuneforge.infer.sampling import SamplingParams, sample

log = logging.getLogger("tuneforge.serve")

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch
GIB = 1024**3


@dataclass
class GenRequest:
    """One sequence to generate. ``on_event`` is called from the engine thread with dict events:
    ``{"type": "delta", "text"}`` as text becomes final, then one ``{"type": "done", "finish_reason", "text",
    "prompt_tokens", "completion_tokens"}`` (finish_reason: stop, length, cancelled or error)."""

    prompt_ids: list[int]
    params: SamplingParams
    on_event: Callable[[dict], None]
    adapter: str | None = None
    candidate: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)
    images: dict | None = None  # image-text models: the processor's tensors for the prompt's images, in order


class IncrementalDecoder:
    """Token ids to text one token at a time, never emitting part of a character.

    A byte-level tokenizer can split one UTF-8 character over several tokens; decoding after each token would show a
    replacement character (U+FFFD) until the last byte arrives. Each step decodes a short window: the tokens already
    shown before ``read`` (context, so tokenizers that drop a leading space mid-sequence still decode the same) and
    those after it; the difference is new text once it no longer ends in a replacement character. That is O(window)
    per token, not a decode of the whole answer.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # first id of the context window
        self.read = 0  # ids before this are in the text already

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _pending(self) -> str:
        shown = self._decode(self.ids[self.prefix : self.read])
        return self._decode(self.ids[self.prefix :])[len(shown) :]

    def add(self, token: int) -> str:
        """The text token ``token`` completes (empty while a character is still incomplete)."""
        self.ids.append(token)
        new = self._pending()
        if not new or new.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return new

    def flush(self) -> str:
        """At the end: the text still held back, less the bytes of a character the answer was cut inside."""
        new = self._pending().rstrip("\ufffd")
        self.prefix = self.read = len(self.ids)
        return new


class _Row:
    """A request inside the running batch."""

    def __init__(self, req: GenRequest, tokenizer, eos_ids: set[int], context_len: int):
        self.req = req
        self.decoder = IncrementalDecoder(tokenizer)
        self.eos_ids = eos_ids
        self.limit = min(req.params.max_tokens, context_len - len(req.prompt_ids))
        self.generator = req.params.generator(req.candidate)
        self.ids: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish: str | None = None
        self.holdback = max((len(s) for s in req.params.stop), default=1) - 1

    def push(self, token: int) -> None:
        """Take one sampled token: update the text, finish on EOS, a stop sequence or the length limit, emit text."""
        if token in self.eos_ids:
            self.finish = "stop"
        else:
            self.ids.append(token)
            self.text += self.decoder.add(token)
            if len(self.ids) >= self.limit:
                self.finish = "length"
        if self.finish:  # the text a cut character held back, whole characters only
            self.text += self.decoder.flush()
        cut = min((i for i in (self.text.find(s) for s in self.req.params.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish = self.text[:cut], "stop"
        self._emit()

    def _emit(self) -> None:
        ready = len(self.text) if self.finish else len(self.text) - self.holdback
        if ready > self.emitted:
            self.req.on_event({"type": "delta", "text": self.text[self.emitted : ready]})
            self.emitted = ready
        if self.finish:
            self.done(self.finish)

    def done(self, reason: str, error: str | None = None) -> None:
        self.finish = reason
        event = {
            "type": "done",
            "finish_reason": reason,
            "text": self.text,
            "prompt_tokens": len(self.req.prompt_ids),
            "completion_tokens": len(self.ids),
            "token_ids": list(self.ids),
        }
        if error:
            event["error"] = error
        self.req.on_event(event)


def _left_pad(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


class ModelGroup:
    """One loaded set of weights, its adapters and its scheduler thread."""

    def __init__(
        self, key: str, folder: Path, device: torch.device, dtype: torch.dtype, max_batch: int, batch_wait_s: float
    ):
        self.key, self.folder, self.device, self.dtype = key, folder, device, dtype
        self.max_batch, self.batch_wait_s = max_batch, batch_wait_s
        self.base = auto_model_class(folder).from_pretrained(str(folder), dtype=dtype).to(device).eval()
        self.model = self.base
        self.adapters: dict[str, Path] = {}
        self.users = 0  # deployments served by this group
        self.param_bytes = sum(p.numel() * p.element_size() for p in self.base.parameters())
        text = self.base.config.get_text_config()  # an image-text model's layers are its text config's
        types = getattr(text, "layer_types", None) or []
        windowed = any("sliding" in t or "chunked" in t for t in types)  # Llama 4's chunked layers: a windowed cache
        self.joinable = not windowed and not getattr(text, "sliding_window", None)
        # peft's mixed-adapter forward needs every adapted layer's input batched by row; an image-text model's vision
        # tower (tiles) and MoE layers (flattened tokens) are not, so its batches hold one adapter's rows at a time
        self.mixed = not takes_images(folder)
        self.held: list = []  # requests of another adapter than the running batch's (one-adapter groups)
        self.lock = threading.Lock()  # forward passes vs adapter changes
        self.waiting: queue.Queue[tuple[GenRequest, object, set[int], int]] = queue.Queue()
        self.rows: list[_Row] = []
        self.cache = None
        self.mask: torch.Tensor | None = None
        self.last: torch.Tensor | None = None
        self.steps = 0
        self.max_rows_seen = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"tuneforge-serve-{key[-24:]}", daemon=True)
        self.thread.start()

    # -- adapters -------------------------------------------------------------------------------------------------
    def add_adapter(self, name: str, path: Path) -> None:
        from peft import PeftModel

        with self.lock:
            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.base, str(path), adapter_name=name).eval()
            else:
                self.model.load_adapter(str(path), adapter_name=name)
            self.adapters[name] = path

    def remove_adapter(self, name: str) -> None:
        with self.lock:
            if name not in self.adapters:
                return
            del self.adapters[name]
            if self.adapters:
                if name in getattr(self.model, "active_adapters", []):
                    self.model.set_adapter(next(iter(self.adapters)))
                self.model.delete_adapter(name)
            else:
                self.base = self.model.unload()  # back to the plain base: no LoRA layers left
                self.model = self.base

    def adapter_bytes(self) -> int:
        if not self.adapters:
            return 0
        return sum(p.numel() * p.element_size() for n, p in self.model.named_parameters() if "lora_" in n)

    # -- requests -------------------------------------------------------------------------------------------------
    def submit(self, req: GenRequest, tokenizer, eos_ids: set[int], context_len: int) -> None:
        self.waiting.put((req, tokenizer, eos_ids, context_len))

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)
        for row in self.rows:
            row.done("cancelled")
        while not self.waiting.empty():
            self.held.append(self.waiting.get_nowait())
        for req, tok, eos, ctx in self.held:
            _Row(req, tok, eos, ctx).done("cancelled")
        self.rows = []
        self.cache = self.mask = self.last = None
        del self.model, self.base
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- the scheduler --------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                new = self._take()
                with self.lock, torch.inference_mode():
                    if new:
                        self._prefill(new)
                    self._drop_finished()
                    if self.rows:
                        self._decode()
                        self._drop_finished()
            except Exception as exc:  # a failed step fails its rows, not the server
                log.exception("serving step failed")
                for row in self.rows:
                    row.done("error", f"{type(exc).__name__}: {exc}")
                self.rows, self.cache, self.mask, self.last = [], None, None, None

    def _take(self) -> list[_Row]:
        if self.rows and not self.joinable:
            return []
        room = self.max_batch - len(self.rows)
        items, self.held = self.held[:room], self.held[room:]
        if not self.rows and not items:
            try:
                items.append(self.waiting.get(timeout=0.2))
            except queue.Empty:
                return []
            deadline = time.monotonic() + self.batch_wait_s  # gather a burst of arrivals into one prefill
            while len(items) < room and time.monotonic() < deadline:
                try:
                    items.append(self.waiting.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
        while len(items) < room:
            try:
                items.append(self.waiting.get_nowait())
            except queue.Empty:
                break
        if not self.mixed:
            items = self._one_adapter(items)
        rows = []
        for req, tok, eos, ctx in items:
            try:
                row = _Row(req, tok, eos, ctx)
            except Exception as exc:  # a request that cannot join fails alone; the batch and the queue go on
                log.exception("a request could not join the batch")
                req.on_event({"type": "done", "finish_reason": "error", "text": "", "error": f"{type(exc).__name__}"})
                continue
            if req.cancelled.is_set():
                row.done("cancelled")
            else:
                rows.append(row)
        return rows

    def _one_adapter(self, items: list) -> list:
        """The items that may join the batch (the running rows' adapter, or the first item's); the rest wait."""
        adapter = self.rows[0].req.adapter if self.rows else (items[0][0].adapter if items else None)
        self.held += [i for i in items if i[0].adapter != adapter]
        return [i for i in items if i[0].adapter == adapter]

    def _forward(self, input_ids, attention_mask, position_ids, rows: list[_Row], cache=None, images=None):
        kwargs = dict(images or {})
        model = self.model
        if self.adapters and self.mixed:
            kwargs["adapter_names"] = [r.req.adapter or BASE_ADAPTER for r in rows]
        elif self.adapters:  # one adapter per batch
            adapter = rows[0].req.adapter
            if adapter is None:
                with model.disable_adapter():
                    return self._run(model, input_ids, attention_mask, position_ids, cache, kwargs)
            model.set_adapter(adapter)
        return self._run(model, input_ids, attention_mask, position_ids, cache, kwargs)

    @staticmethod
    def _run(model, input_ids, attention_mask, position_ids, cache, kwargs):
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        return out.logits[:, -1, :].float(), out.past_key_values

    def _prefill(self, new: list[_Row]) -> None:
        length = max(len(r.req.prompt_ids) for r in new)
        ids = torch.zeros((len(new), length), dtype=torch.long)
        mask = torch.zeros((len(new), length), dtype=torch.long)
        for i, r in enumerate(new):
            n = len(r.req.prompt_ids)
            ids[i, length - n :] = torch.tensor(r.req.prompt_ids)
            mask[i, length - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(ids, mask, positions, new, images=self._images(new))
        tokens = sample(logits, [r.req.params for r in new], [r.generator for r in new])
        for r, t in zip(new, tokens.tolist()):
            r.push(t)
        if not self.rows:
            self.rows, self.cache, self.mask, self.last = new, cache, mask, tokens
        else:
            self._join(new, cache, mask, tokens)
        self.max_rows_seen = max(self.max_rows_seen, len(self.rows))

    def _images(self, rows: list[_Row]) -> dict | None:
        """The prefill's image tensors: each row's, in row order (the order of their image tokens in the batch)."""
        parts = [r.req.images for r in rows if r.req.images]
        if not parts:
            return None
        return {
            k: torch.cat([p[k] for p in parts]).to(self.device, self.dtype if parts[0][k].is_floating_point() else None)
            for k in parts[0]
        }

    def _join(self, new: list[_Row], cache, mask: torch.Tensor, tokens: torch.Tensor) -> None:
        """Append prefilled rows to the running batch: left-pad the shorter KV cache, then stack on the batch dim."""
        length = max(self.mask.shape[1], mask.shape[1])
        for old_layer, new_layer in zip(self.cache.layers, cache.layers):
            old_layer.keys = torch.cat([_left_pad(old_layer.keys, length, 2), _left_pad(new_layer.keys, length, 2)])
            old_layer.values = torch.cat(
                [_left_pad(old_layer.values, length, 2), _left_pad(new_layer.values, length, 2)]
            )
        self.mask = torch.cat([_left_pad(self.mask, length, 1), _left_pad(mask, length, 1)])
        self.last = torch.cat([self.last, tokens])
        self.rows = self.rows + new

    def _drop_finished(self) -> None:
        for r in self.rows:
            if r.finish is None and r.req.cancelled.is_set():
                r.done("cancelled")
        keep = [i for i, r in enumerate(self.rows) if r.finish is None]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask, self.last = [], None, None, None
            return
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.last = self.mask[index], self.last[index]
        self.rows = [self.rows[i] for i in keep]
        if self.joinable:  # columns that are padding for every remaining row are dead weight: cut them
            lead = int((self.mask.cumsum(-1) == 0).sum(-1).min())
            if lead:
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]
                self.mask = self.mask[:, lead:]

    def _decode(self) -> None:
        positions = self.mask.sum(-1, keepdim=True)  # the new token follows this many real tokens
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        logits, self.cache = self._forward(self.last[:, None], self.mask, positions, self.rows, self.cache)
        self.last = sample(logits, [r.req.params for r in self.rows], [r.generator for r in self.rows])
        for r, t in zip(self.rows, self.last.tolist()):
            r.push(t)
        self.steps += 1


# -- deployments ------------------------------------------------------------------------------------------------------


@dataclass
class Deployment:
    """A deployed model as the engine serves it."""

    deployed_id: str
    group: ModelGroup
    adapter: str | None
    tokenizer: object
    eos_ids: set[int]
    context_len: int
    defaults: SamplingParams
    chat_template: str | None
    prompt_rules: dict = field(default_factory=dict)  # "serving" of the model's tuneforge_config.json
    processor: object = None  # image-text models: turns a request's images into tokens and pixels

    def submit(self, req: GenRequest) -> None:
        req.adapter = self.adapter
        self.group.submit(req, self.tokenizer, self.eos_ids, self.context_len)

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        should_stop: Callable[[], bool] | None = None,
        timeout_s: float = 3600.0,
    ) -> list[str]:
        """Batch generation for pipelines (teacher labelling, evaluation): submit every prompt, block until all are
        done; the engine batches them. Stops early (raising InterruptedError) when ``should_stop`` says so."""
        done = [threading.Event() for _ in prompts]
        texts: list[str | None] = [None] * len(prompts)
        requests = []

        def on_event(event, i):
            if event["type"] == "done":
                texts[i] = event.get("text", "") if event.get("finish_reason") != "error" else None
                done[i].set()

        for i, ids in enumerate(prompts):
            req = GenRequest(ids, params, lambda e, i=i: on_event(e, i))
            requests.append(req)
            self.submit(req)
        deadline = time.monotonic() + timeout_s
        for event in done:
            while not event.wait(0.5):
                if (should_stop is not None and should_stop()) or time.monotonic() > deadline:
                    for req in requests:
                        req.cancelled.set()
                    raise InterruptedError("generation stopped before it finished")
        if any(t is None for t in texts):
            raise RuntimeError("generation failed for some prompts; see the log")
        return texts  # type: ignore[return-value]


def _processor(folder: Path, weights: Path, tokenizer):
    """An image-text model's processor: the tuned folder's (saved beside the adapter), else its base's."""
    from transformers import AutoProcessor

    source = folder if has_processor(folder) else weights
    return AutoProcessor.from_pretrained(str(source), tokenizer=tokenizer)


def _eos_ids(folder: Path, tokenizer) -> set[int]:
    ids: set[int] = set()
    gen = Path(folder) / "generation_config.json"
    if gen.exists():
        value = json.loads(gen.read_text()).get("eos_token_id")
        ids.update(value if isinstance(value, list) else [value] if value is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _defaults(folder: Path, max_tokens: int) -> SamplingParams:
    """Omitted sampling fields come from the model's generation_config.json, with Hugging Face's meaning: without
    ``do_sample: true`` the model's publisher asks for greedy decoding."""
    d = SamplingParams(max_tokens=max_tokens)
    gen = Path(folder) / "generation_config.json"
    cfg = json.loads(gen.read_text()) if gen.exists() else {}
    if cfg.get("do_sample") is not True:
        d.temperature = 0.0
        return d
    d.temperature = float(cfg.get("temperature", d.temperature))
    d.top_p = float(cfg.get("top_p", d.top_p))
    d.top_k = int(cfg.get("top_k") or 0)
    return d


class Engine:
    """Loads deployed models (sharing bases between adapters) and hands requests to their groups."""

    def __init__(
        self,
        *,
        device: str = "auto",
        max_batch: int = 32,
        batch_wait_ms: float = 2.0,
        memory_limit_bytes: int | None = None,
        default_max_tokens: int = 256,
    ):
        self.device = pick_device(device)
        self.dtype = pick_dtype("auto", self.device)
        self.max_batch, self.batch_wait_s = max_batch, batch_wait_ms / 1000
        self.memory_limit_bytes = memory_limit_bytes
        self.default_max_tokens = default_max_tokens
        self.groups: dict[str, ModelGroup] = {}
        self.deployments: dict[str, Deployment] = {}
        self.lock = threading.RLock()

    # -- memory ---------------------------------------------------------------------------------------------------
    def loaded_bytes(self) -> int:
        return sum(g.param_bytes + g.adapter_bytes() for g in self.groups.values())

    def available_bytes(self) -> int:
        if self.device.type == "cuda":
            free = torch.cuda.mem_get_info(self.device)[0]
        else:
            import psutil

            free = psutil.virtual_memory().available
        if self.memory_limit_bytes is not None:
            free = min(free, self.memory_limit_bytes - self.loaded_bytes())
        return free

    def check_fits(self, need: int, what: str) -> None:
        free = self.available_bytes()
        if need * 1.2 > free:  # weights plus room for activations and the KV cache
            raise ResourceExhausted(
                f"not enough memory to serve {what}: it needs about {need * 1.2 / GIB:.2f} GiB (weights + 20%) and "
                f"{max(free, 0) / GIB:.2f} GiB is free on {self.device}; undeploy a model, use a machine with more "
                "memory, or raise TUNEFORGE_SERVE_MEMORY_LIMIT_BYTES"
            )

    # -- deploy / undeploy ----------------------------------------------------------------------------------------
    def deploy(self, deployed_id: str, folder: Path, base_dir: Path | None = None) -> Deployment:
        """Serve ``folder`` (a full model, or a LoRA adapter on ``base_dir``) as ``deployed_id``."""
        from transformers import AutoTokenizer

        folder = Path(folder)
        with self.lock:
            if deployed_id in self.deployments:
                return self.deployments[deployed_id]
            adapter_folder = is_adapter(folder)
            weights = Path(base_dir) if adapter_folder else folder
            if adapter_folder and base_dir is None:
                raise InvalidArgument(f"{folder} is a LoRA adapter and no base model was found for it")
            key = f"{weights.resolve()}|{self.dtype}"
            group = self.groups.get(key)
            if group is None:
                self.check_fits(folder_bytes(weights) + (folder_bytes(folder) if adapter_folder else 0), str(folder))
                group = ModelGroup(key, weights, self.device, self.dtype, self.max_batch, self.batch_wait_s)
                self.groups[key] = group
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder if has_tokenizer(folder) else weights))
                if len(tokenizer) > group.base.get_input_embeddings().weight.shape[0]:
                    raise InvalidArgument(
                        f"the tokenizer of {folder} has {len(tokenizer)} tokens but the model's "
                        "embedding table is smaller; the folder's tokenizer belongs to another model"
                    )
                adapter = None
                if adapter_folder:
                    adapter = f"d{deployed_id}"
                    group.add_adapter(adapter, folder)
            except Exception:
                if group.users == 0:  # nothing else uses the weights just loaded: free them
                    self.groups.pop(key, None)
                    group.close()
                raise
            group.users += 1
            cfg = group.base.config.get_text_config()
            context = int(getattr(cfg, "max_position_embeddings", 0) or getattr(tokenizer, "model_max_length", 4096))
            processor = _processor(folder, weights, tokenizer) if takes_images(weights) else None
            dep = Deployment(
                deployed_id,
                group,
                adapter,
                tokenizer,
                _eos_ids(folder, tokenizer),
                context,
                _defaults(folder, self.default_max_tokens),
                tokenizer.chat_template,
                serving_rules(folder),
                processor,
            )
            self.deployments[deployed_id] = dep
            return dep

    def undeploy(self, deployed_id: str) -> None:
        with self.lock:
            dep = self.deployments.pop(deployed_id, None)
            if dep is None:
                return
            group = dep.group
            if dep.adapter:
                group.remove_adapter(dep.adapter)
            group.users -= 1
            if group.users <= 0:
                self.groups.pop(group.key, None)
                group.close()

    def get(self, deployed_id: str) -> Deployment | None:
        return self.deployments.get(deployed_id)

    def stats(self) -> dict:
        with self.lock:
            return {
                "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""),
                "loadedBytes": self.loaded_bytes(),
                "groups": [
                    {
                        "weights": str(g.folder),
                        "paramBytes": g.param_bytes,
                        "adapterBytes": g.adapter_bytes(),
                        "adapters": sorted(g.adapters),
                        "deployments": g.users,
                        "continuousBatching": g.joinable,
                        "maxBatchSeen": g.max_rows_seen,
                        "decodeSteps": g.steps,
                        "activeRows": len(g.rows),
                        "waiting": g.waiting.qsize(),
                    }
                    for g in self.groups.values()
                ],
                "deployments": {
                    d: {"weights": str(dep.group.folder), "adapter": dep.adapter} for d, dep in self.deployments.items()
                },
            }

    def close(self) -> None:
        with self.lock:
            for group in self.groups.values():
                group.close()
            self.groups.clear()
            self.deployments.clear()
