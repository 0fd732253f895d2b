"""Starts sagemaker-huggingface-inference-toolkit's own model server (`serving.main()`, MMS),
what the HuggingFace inference image runs, on this host instead of in a container.

Run by the inference parity interpreter (`local_pipeline/serving.py` does it), never imported
by the project: `python hf_model_server.py CONFIG_FILE`. Three host-level changes, none on the
request path: the MMS config goes to CONFIG_FILE instead of /etc/sagemaker-mms.properties, the
server binds 127.0.0.1 instead of 0.0.0.0, and the toolkit's search for "the" MMS process (it
scans the whole host and refuses a second server) looks only in this process group.
"""

from __future__ import annotations

import os
import sys

import psutil
from sagemaker_huggingface_inference_toolkit import mms_model_server, serving
from sagemaker_inference import model_server

LOCAL_ADDRESS = "127.0.0.1"


def _local_config(generate):
    def generate_locally(env, handler_service=None) -> str:
        return generate(env, handler_service).replace("//0.0.0.0:", f"//{LOCAL_ADDRESS}:")

    return generate_locally


def _server_in_this_process_group() -> psutil.Process:
    group = os.getpgrp()
    found = []
    for process in psutil.process_iter():
        try:
            if (os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE
                    and model_server.MMS_NAMESPACE in process.cmdline()):
                found.append(process)
        except (psutil.Error, ProcessLookupError):
            continue
    if len(found) != 1:
        raise Exception(f"expected one MMS server in process group {group}, found {len(found)}")
    return found[0]


def main(argv: list[str]) -> None:
    (config_file,) = argv
    model_server.MMS_CONFIG_FILE = mms_model_server.MMS_CONFIG_FILE = config_file
    model_server._generate_mms_config_properties = _local_config(model_server._generate_mms_config_properties)
    model_server._retrieve_mms_server_process = _server_in_this_process_group
    serving.main()


if __name__ == "__main__":
    main(sys.argv[1:])
