"""Run the project's step scripts on this machine, offline: sample data, and a demo of the
pipeline's steps on it."""

import sys
from pathlib import Path

# The step scripts in container_code/ are flat modules that import each other by name, as
# they do in the containers; make them importable the same way from here.
CONTAINER_CODE = Path(__file__).resolve().parent.parent / "container_code"
if str(CONTAINER_CODE) not in sys.path:
    sys.path.insert(0, str(CONTAINER_CODE))
