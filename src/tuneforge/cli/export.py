"""`tuneforge export`: a tuned model (or any Llama-family model folder) as a GGUF file and an Ollama Modelfile."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tuneforge.cli.common import api_errors, console, settings
from tuneforge.quiet import quiet_libraries


def export(
    model: str = typer.Argument(
        ..., help="A model folder (local or gs://): a run's …/checkpoints/final, a LoRA adapter, or full weights."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the .gguf file and the Modelfile."),
    quantization: str = typer.Option("q8_0", "--quantization", "-q", help="f16 or q8_0."),
    base: Optional[str] = typer.Option(
        None,
        "--base",
        help="A LoRA adapter's base model folder, when the adapter's own record does not lead to one here.",
        show_default=False,
    ),
) -> None:
    """Write a Llama-family model (a LoRA adapter merged into its base) as GGUF for llama.cpp, Ollama or LM
    Studio, with its tokenizer and chat template, and an Ollama Modelfile beside it."""
    quiet_libraries()
    from tuneforge.catalog.gguf_export import export_gguf  # lazy: torch and transformers
    from tuneforge.catalog.model_folder import weights_at  # lazy: as above
    from tuneforge.catalog.weights import materialize  # lazy: as above

    s = settings()
    with api_errors():
        folder, found_base = (materialize(model, s), materialize(base, s)) if base else weights_at(model, s, model)
        path = export_gguf(folder, out, quantization, base_dir=found_base)
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) and {out / 'Modelfile'}")
    console.print(f"run it with Ollama: cd {out} && ollama create my-model -f Modelfile && ollama run my-model")
