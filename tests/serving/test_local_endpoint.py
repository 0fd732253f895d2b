"""`LocalEndpoint`'s own failure modes, with stand-in interpreters (no model server needed): what
is missing is named, a server that never becomes healthy is stopped with everything it started,
and the error shows the end of its log. Serving itself is tested where a model is served
(tests/container_code/test_inference.py, tests/serving/test_serving_client.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from local_pipeline.serving import EndpointError, LocalEndpoint, inference_python


@pytest.fixture
def artifact(tmp_path) -> Path:
    (tmp_path / "model" / "code").mkdir(parents=True)
    (tmp_path / "model" / "code" / "inference.py").write_text("")
    return tmp_path / "model"


def stand_in_python(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "bin" / "python"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_default_interpreter_is_the_inference_parity_env():
    assert inference_python().parts[-4:] == (".parity", "inference", "bin", "python")


def test_a_missing_interpreter_says_how_to_build_it(artifact, tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup-parity"):
        with LocalEndpoint(artifact, python=tmp_path / "nowhere" / "python"):
            pass


def test_an_artifact_without_serving_code_is_refused(artifact, tmp_path):
    (artifact / "code" / "inference.py").unlink()
    with pytest.raises(FileNotFoundError, match="code/inference.py is missing"):
        with LocalEndpoint(artifact, python=stand_in_python(tmp_path, "exit 0\n")):
            pass


def test_a_server_that_exits_shows_its_log(artifact, tmp_path):
    python = stand_in_python(tmp_path, 'echo "Invalid configuration: Invalid port number"\nexit 3\n')
    with pytest.raises(EndpointError, match=r"(?s)exited with 3 before it was healthy.*Invalid port number"):
        with LocalEndpoint(artifact, python=python):
            pass


def test_a_server_that_never_answers_is_stopped_with_its_children(artifact, tmp_path):
    child_pid_file = tmp_path / "child.pid"
    python = stand_in_python(tmp_path, 'echo "starting, never healthy"\nsleep 300 &\necho $! > "$CHILD_PID_FILE"\nwait\n')
    endpoint = LocalEndpoint(artifact, python=python, startup_timeout=2, environment={"CHILD_PID_FILE": str(child_pid_file)})
    with pytest.raises(EndpointError, match=r"(?s)/ping did not answer 200 within 2 s.*starting, never healthy"):
        with endpoint:
            pass
    assert not running(int(child_pid_file.read_text()))  # gone with the process group
    assert endpoint.port is None


def running(pid: int) -> bool:
    """True unless the process is gone or a zombie (killed, waiting for whoever reaps orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
