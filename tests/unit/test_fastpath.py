"""The fast training step against the reference step: same loss, same gradients, on the same examples."""

import json
import random
import threading

import pytest
import torch

from tuneforge.data import ChatEncoder, Report, collate, parse_lines
from tuneforge.data.tokenize import IGNORE_INDEX, Encoded
from tuneforge.train.fastpath import (
    CausalLMLoss,
    LinearCrossEntropy,
    Prefetcher,
    fast_evaluate,
    fast_train_step,
    pack,
    plan_micro_batches,
    step_task_scale,
)
from tuneforge.train.metrics import train_metrics
from tuneforge.train.recipes.sft import evaluate, train_step

END = {"tiny-llama": "<|eot_id|>", "tiny-gemma3": "<end_of_turn>", "tiny-qwen3": "<|im_end|>"}


def _examples(tokenizer_of, family: str, n: int = 12, seed: int = 0) -> list[Encoded]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        prompt = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 40)))
        lines.append(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": prompt[::-1]},
                        {"role": "user", "content": "again"},
                        {"role": "assistant", "content": prompt[: rng.randint(1, 9)]},
                    ]
                }
            )
        )
    encoder = ChatEncoder(tokenizer_of(family), END[family])
    examples = [encoder.encode(c) for c in parse_lines(lines, Report())]
    for i, e in enumerate(examples):
        e.task = i % 2  # exercise the distillation task weights as well
    return examples


def _model(tiny_dir, family, lora=False):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir(family)), dtype=torch.float32)
    if lora:
        from tuneforge.train.lora import apply_lora

        model = apply_lora(model, 4, 8.0, 0.0)
        for name, p in model.named_parameters():  # non-zero B so LoRA gradients reach A as well
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02)
    return model


def _grads(model):
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


# --- numerics ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family,lora", [("tiny-llama", False), ("tiny-llama", True), ("tiny-gemma3", False), ("tiny-qwen3", True)]
)
def test_fast_step_gives_the_reference_loss_and_gradients(random_tiny_dir, tokenizer_of, family, lora):
    """Float32, same examples: the reference step on padded micro-batches of 3 vs the fast step packed by a token
    budget into different micro-batches, with a chunk size that splits the targets unevenly."""
    examples = _examples(tokenizer_of, family)
    pad = tokenizer_of(family).pad_token_id
    weights = (1.0, 0.5)
    model = _model(random_tiny_dir, family, lora)

    ref_batches = [collate(examples[i : i + 3], pad, packing=False, row_tokens=4096) for i in range(0, 12, 3)]
    ref = train_step(model, ref_batches, torch.device("cpu"), weights)
    ref_grads = _grads(model)

    # Varlen layout (one row per micro-batch) and dense-mask layout (rows as long as the longest example, padded).
    packed = [pack(g) for g in plan_micro_batches(examples[:6], budget=160)]
    packed += [
        pack(g, pad, row_tokens=max(len(e) for e in examples)) for g in plan_micro_batches(examples[6:], budget=240)
    ]
    assert 1 < len(packed) < len(examples)  # several micro-batches, several examples in some
    assert any(p.input_ids.shape[0] > 1 for p in packed) and any((p.input_ids == pad).any() for p in packed)
    scale, counts = step_task_scale(packed, weights)
    totals = fast_train_step(CausalLMLoss(model, chunk=7), packed, scale)
    fast = train_metrics(totals["task_sums"], int(totals["correct"]), counts, weights)
    fast_grads = _grads(model)

    assert fast["train_num_predictions"] == ref["train_num_predictions"]
    assert fast["train_total_loss"] == pytest.approx(ref["train_total_loss"], rel=1e-5)
    assert fast["train_label_loss"] == pytest.approx(ref["train_label_loss"], rel=1e-5)
    assert fast["train_rationale_loss"] == pytest.approx(ref["train_rationale_loss"], rel=1e-5)
    assert fast["train_fraction_of_correct_next_step_preds"] == ref["train_fraction_of_correct_next_step_preds"]
    assert ref_grads.keys() == fast_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_fast_evaluate_matches_the_reference_evaluate(tiny_dir, tokenizer_of):
    examples = _examples(tokenizer_of, "tiny-llama")
    model = _model(tiny_dir, "tiny-llama")
    pad = tokenizer_of("tiny-llama").pad_token_id
    ref = evaluate(
        model,
        [collate(examples[i : i + 4], pad, packing=True, row_tokens=4096) for i in range(0, 12, 4)],
        torch.device("cpu"),
    )
    fast = fast_evaluate(CausalLMLoss(model), [pack(g) for g in plan_micro_batches(examples, 200)])
    assert fast["eval_num_predictions"] == ref["eval_num_predictions"]
    assert fast["eval_total_loss"] == pytest.approx(ref["eval_total_loss"], rel=1e-5)
    assert fast["eval_fraction_of_correct_next_step_preds"] == ref["eval_fraction_of_correct_next_step_preds"]
    assert all(p.grad is None for p in model.parameters())  # evaluation computes no gradients


def test_chunked_linear_cross_entropy_equals_the_plain_formula():
    torch.manual_seed(1)
    hidden = torch.randn(11, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (11,))
    tasks = torch.tensor([0, 1] * 5 + [0])
    token_weights = torch.rand(11, dtype=torch.float64)

    loss, sums, correct = LinearCrossEntropy.apply(hidden, weight, targets, token_weights, tasks, 4, True)
    (2.5 * loss).backward()
    gh, gw = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    logits = hidden @ weight.t()
    per_token = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    (2.5 * (per_token * token_weights).sum()).backward()
    torch.testing.assert_close(loss.double(), (per_token * token_weights).sum().detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(
        sums.double(), torch.stack([per_token[tasks == t].sum() for t in (0, 1)]).detach(), rtol=1e-6, atol=1e-9
    )
    assert int(correct) == int((logits.argmax(-1) == targets).sum())
    torch.testing.assert_close(gh, hidden.grad)
    torch.testing.assert_close(gw, weight.grad)


# --- packing -----------------------------------------------------------------------------------------------------


def _enc(n, trained_from=1, task=0):
    ids = list(range(100, 100 + n))
    return Encoded(input_ids=ids, labels=[IGNORE_INDEX] * trained_from + ids[trained_from:], task=task)


def test_best_fit_decreasing_fills_the_fullest_bin_that_fits():
    lengths = [5, 3, 9, 2, 7, 4, 1]
    examples = [_enc(n) for n in lengths]
    bins = plan_micro_batches(examples, budget=10)
    # 9, 7, 5 open bins; 4 joins 5; 3 fills 7; 2 fits nowhere; 1 goes to the fullest bin with room (9).
    assert sorted(sorted(len(e) for e in b) for b in bins) == [[1, 9], [2], [3, 7], [4, 5]]
    assert sum(len(b) for b in bins) == len(examples)
    assert len(plan_micro_batches([_enc(30), _enc(2)], budget=10)[0]) == 1  # too long: alone, never cut


def test_pack_targets_never_cross_examples():
    a, b = _enc(4, trained_from=2), _enc(3, trained_from=1, task=1)
    p = pack([a, b])
    assert p.input_ids.tolist() == [a.input_ids + b.input_ids]
    assert p.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    # a: tokens 2, 3 are predicted from positions 1, 2; b: tokens 1, 2 from positions 5, 6 (b's first token is
    # not predicted from a's last).
    assert p.target_index.tolist() == [1, 2, 4, 5]
    assert p.targets.tolist() == [a.input_ids[2], a.input_ids[3], b.input_ids[1], b.input_ids[2]]
    assert p.tasks.tolist() == [0, 0, 1, 1] and p.task_counts == [2, 2] and p.num_tokens == 7


def test_rows_of_a_dense_mask_layout_pad_their_tails_and_index_targets_flat():
    a, b, c = _enc(4, trained_from=2), _enc(3), _enc(5, trained_from=4)
    p = pack([a, b, c], pad_id=7, row_tokens=7)  # best fit: [c], then [a, b]
    assert p.input_ids.tolist() == [[*c.input_ids, 7, 7], a.input_ids + b.input_ids]
    assert p.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1], [0, 1, 2, 3, 0, 1, 2]]
    assert p.target_index.tolist() == [3, 8, 9, 11, 12]  # flat in rows x 7: c's token 4, a's 2 and 3, b's 1 and 2
    assert p.targets.tolist() == [c.input_ids[4], a.input_ids[2], a.input_ids[3], b.input_ids[1], b.input_ids[2]]
    assert p.num_tokens == 12


def test_packed_rows_do_not_attend_across_examples(tiny_dir, tokenizer_of):
    """The hidden states of an example packed after another equal those of the example alone."""
    examples = _examples(tokenizer_of, "tiny-gemma3", n=3)
    model = _model(tiny_dir, "tiny-gemma3").eval()
    decoder = model.get_decoder()
    together = pack(examples)
    with torch.no_grad():
        joint = decoder(input_ids=together.input_ids, position_ids=together.position_ids, use_cache=False)
        alone = decoder(input_ids=pack(examples[2:]).input_ids, use_cache=False)
    start = len(examples[0]) + len(examples[1])
    torch.testing.assert_close(joint.last_hidden_state[0, start:], alone.last_hidden_state[0], rtol=1e-4, atol=1e-5)


# --- prefetching -------------------------------------------------------------------------------------------------


def test_prefetcher_builds_ahead_in_order_and_raises_at_the_failing_step():
    seen = []

    def make(step):
        seen.append((step, threading.current_thread().name))
        if step == 3:
            raise ValueError("bad step")
        return step * 10

    prefetch = Prefetcher(make, start=1, stop=6)
    it = iter(prefetch)
    assert next(it) == (1, 10) and next(it) == (2, 20)
    with pytest.raises(ValueError, match="bad step"):
        next(it)
    prefetch.close()
    assert all(name == "tuneforge-prefetch" for _, name in seen)
    assert [s for s, _ in seen] == [1, 2, 3]  # nothing after the failure


@pytest.mark.slow
def test_compiled_layers_and_activation_checkpointing_train_the_same(tmp_path, settings):
    """`compile` and `activation_checkpointing` change how the step runs, not what it computes (4 FULL steps)."""
    from tuneforge.train import TuningConfig, run_sft
    from tuneforge.train.demo_task import make_task, write_jsonl
    from tuneforge.train.metrics import read_metrics

    task = make_task(n_train=40, n_validation=2, n_held_out=2, seed=1)
    train = str(write_jsonl(tmp_path / "train.jsonl", task.train))

    def losses(name, **options):
        config = TuningConfig(
            base_model="tiny-llama",
            tuning_mode="FULL",
            train_dataset=train,
            max_steps=4,
            batch_size=8,
            output_uri=str(tmp_path / name),
            device="cpu",
            **options,
        )
        run_sft(config, settings=settings)
        return [m["train_total_loss"] for m in read_metrics(tmp_path / name / "metrics.jsonl")]

    plain = losses("plain")
    assert losses("compiled", compile=True, activation_checkpointing=True) == pytest.approx(plain, rel=1e-5)
