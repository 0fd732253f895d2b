"""Keeps the SageMaker SDK's chatter out of stdout and out of synth output.

The SDK logs its config-file search at import time through a handler on *stdout*, which
would corrupt `python -m pipeline_definition > definition.json`. This must run before the
SDK is imported, so it lives apart from everything that imports `sagemaker`.
"""

from __future__ import annotations

import logging
import os
import sys

# Informational messages that say nothing about this pipeline: where config files were
# looked for, the telemetry notice, "Popping out 'ProcessingJobName'...", image look-ups.
_CHATTY_LOGGERS = (
    "sagemaker.config",
    "sagemaker.telemetry",
    "sagemaker.image_uris",
    "sagemaker.workflow.utilities",
    "sagemaker.workflow._utils",
)


def keep_sdk_output_off_stdout() -> None:
    # v2 is this project's decision (docs/decisions.md); its import-time notice says nothing new.
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    config_logger = logging.getLogger("sagemaker.config")
    # The SDK installs its stdout handler only on a logger that has none and no level.
    if not config_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s - %(message)s"))
        config_logger.addHandler(handler)
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
