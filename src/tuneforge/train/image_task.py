"""A synthetic image task the model cannot answer without looking: the colour of a shape.

Each image is a noisy grey canvas of random size with one filled square or circle of one of four colours at a
random place and size; the question is the same for every image, so the text carries nothing. Held-out images are
drawn with another seed (never seen in training). The tuned adapter is scored from its saved folder with plain
transformers and peft (``AutoProcessor``, ``AutoModelForImageTextToText``, ``PeftModel``), greedy decoding, exact
match (docs/quality.md, "Images").
"""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path

from tuneforge.catalog.model_folder import ADAPTER_CONFIG
from tuneforge.settings import Settings, get_settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.recipes.sft import run_sft

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (230, 210, 30)}
QUESTION = "What colour is the shape? Answer with one word."


def shape_image(rng: random.Random) -> tuple[bytes, str]:
    """(PNG bytes, colour name) of one random image."""
    from PIL import Image, ImageDraw

    width, height = rng.randint(24, 64), rng.randint(24, 64)
    grey = rng.randint(70, 190)
    canvas = Image.new("RGB", (width, height))
    canvas.putdata(
        [tuple(max(0, min(255, grey + rng.randint(-25, 25))) for _ in range(3)) for _ in range(width * height)]
    )
    colour = rng.choice(sorted(COLOURS))
    side = rng.randint(max(8, min(width, height) // 3), min(width, height))
    x, y = rng.randint(0, width - side), rng.randint(0, height - side)
    draw = ImageDraw.Draw(canvas)
    shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
    shape((x, y, x + side - 1, y + side - 1), fill=COLOURS[colour])
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue(), colour


def write_dataset(settings: Settings, bucket: str, name: str, n: int, seed: int) -> tuple[str, list[tuple[str, str]]]:
    """A chat JSONL of ``n`` images stored under the bucket root (gs://BUCKET/NAME/…): (its gs:// URI, [(image
    URI, colour)])."""
    rng = random.Random(seed)
    folder = settings.resolved_bucket_root / bucket / name
    folder.mkdir(parents=True, exist_ok=True)
    items, lines = [], []
    for i in range(n):
        data, colour = shape_image(rng)
        (folder / f"{i:04d}.png").write_bytes(data)
        uri = f"gs://{bucket}/{name}/{i:04d}.png"
        items.append((uri, colour))
        user = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": uri, "detail": "low"}}]
        lines.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": colour}]})
    (folder.parent / f"{name}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"gs://{bucket}/{name}.jsonl", items


def greedy_image_answers(final_dir: Path, images: list, max_new_tokens: int = 8) -> list[str]:
    """Answers of a saved adapter folder, loaded with plain transformers and peft (no tuneforge code)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(final_dir))
    base = json.loads((Path(final_dir) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), str(final_dir)).eval()
    answers = []
    chat = [{"role": "user", "content": [{"type": "text", "text": QUESTION}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    with torch.no_grad():
        for image in images:
            inputs = processor(text=prompt, images=[image], return_tensors="pt", add_special_tokens=False)
            inputs["pixel_values"] = inputs["pixel_values"].float()
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[0, inputs["input_ids"].shape[1] :]
            answers.append(processor.tokenizer.decode(new, skip_special_tokens=True).strip())
    return answers


def image_quality(
    root: Path,
    *,
    settings: Settings | None = None,
    train: int = 256,
    held_out: int = 64,
    epochs: float = 4,
    **overrides,
) -> dict:
    """Tune tiny-llama4 (LoRA) on the colour task; held-out exact match from the saved artifact."""
    from PIL import Image

    settings = settings or get_settings()
    train_uri, _ = write_dataset(settings, "image-task", "train", train, seed=1)
    _, test = write_dataset(settings, "image-task", "held-out", held_out, seed=2)
    started = time.perf_counter()
    result = run_sft(
        TuningConfig(
            base_model="tiny-llama4",
            train_dataset=train_uri,
            output_uri=str(root / "run"),
            tuning_mode="PEFT_ADAPTER",
            epochs=epochs,
            seed=5,
            **overrides,
        ),
        settings=settings,
    )
    seconds = time.perf_counter() - started
    root_dir = settings.resolved_bucket_root
    images = [Image.open(root_dir / uri.removeprefix("gs://")).convert("RGB") for uri, _ in test]
    answers = greedy_image_answers(result.final_dir, images)
    expected = [colour for _, colour in test]
    return {
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "held_out_exact_match": sum(a == e for a, e in zip(answers, expected)) / len(expected),
        "majority_class": max(expected.count(c) for c in COLOURS) / len(expected),
        "answers": answers[:8],
        **overrides,
    }
