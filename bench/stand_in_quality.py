"""Do the tiny stand-ins learn ordinary chat data? Held-out exact match on a letter-mapping chat task whose every line
carries a system message, each family in each mode, with the catalog's defaults (docs/quality.md, "Stand-ins").

.venv/bin/python bench/stand_in_quality.py [--models tiny-gemma3 ...] [--modes PEFT_ADAPTER ...] [--lines 2000]
    [--cipher-seed 99 --system "Reply with the secret code of the word."]   # the second cipher of docs/quality.md
"""

from __future__ import annotations

import argparse

from cpu_quality import report, scratch
from tuneforge.catalog.tiny import TINY_SPECS, stand_in_weights
from tuneforge.train.demo_task import CIPHER_SYSTEM, CipherTask
from tuneforge.train.stand_ins import chat_quality


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=sorted(TINY_SPECS))
    p.add_argument("--modes", nargs="+", default=["FULL", "PEFT_ADAPTER"])
    p.add_argument("--lines", type=int, default=2000)
    p.add_argument("--cipher-seed", type=int, default=CipherTask.seed)
    p.add_argument("--system", default=CIPHER_SYSTEM)
    args = p.parse_args()
    root = scratch()
    cipher = CipherTask(seed=args.cipher_seed, system=args.system)
    report(
        [
            {
                **chat_quality(root / f"{m}-{mode}", m, mode, n_train=args.lines, cipher=cipher),
                "pretrained": bool(stand_in_weights(m)),
                "cipher_seed": cipher.seed,
            }
            for m in args.models
            for mode in args.modes
        ]
    )


if __name__ == "__main__":
    main()
