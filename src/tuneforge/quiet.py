"""Keep library chatter out of what users read: transformers' warnings and progress bars, tokenizers' fork warning,
library deprecations. The CLI calls it before a command's work, a job's child process before its run."""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    import transformers  # after the filter (importing it can warn); and only when a command needs it

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
