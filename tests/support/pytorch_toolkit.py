"""A model artifact served in this process the way the PyTorch inference images serve it:
sagemaker-pytorch-inference's HandlerService imports <model dir>/code/inference.py, runs
model_fn when it initializes, then input_fn -> predict_fn -> output_fn per request. Only
TorchServe's HTTP front (and Java) is left out; `ServingContext` stands in for its context.

    endpoint = PyTorchToolkitEndpoint(model_dir)     # raises what initialize raises
    response = endpoint.invoke('{"review_body": "great"}', "application/json")
    response.status, response.content_type, response.body

The project deploys the HuggingFace image (tests/support/local_endpoint.py serves it over
HTTP); this one shows that the handlers behave under the other toolkit too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import model_io
from local_pipeline.serving import Response

SERVING_MODULE_NAMES = tuple(Path(name).stem for name in model_io.SERVING_CODE_FILES)


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]):
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class ServingContext:
    """The parts of TorchServe's Context that sagemaker-inference reads and writes."""

    def __init__(self, model_dir: Path, headers: dict[str, str] | None = None):
        self.model_name = "model"
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.request_processor = [_RequestProcessor(headers or {})]
        self.status_code = 200
        self.phrase: str | None = None
        self.content_type: str | None = None

    def set_response_status(self, code: int = 200, phrase: str = "") -> None:
        self.status_code, self.phrase = code, phrase

    def set_response_content_type(self, index: int, value: str) -> None:
        self.content_type = value


class PyTorchToolkitEndpoint:
    """An unpacked model artifact behind sagemaker-pytorch-inference's HandlerService."""

    def __init__(self, model_dir: Path):
        handler_service = pytest.importorskip(
            "sagemaker_pytorch_serving_container.handler_service",
            reason="sagemaker-pytorch-inference is not installed (requirements-dev.txt)")
        self.model_dir = Path(model_dir).resolve()
        code_dir = self.model_dir / model_io.SERVING_CODE_DIR
        if not (code_dir / "inference.py").is_file():
            raise FileNotFoundError(f"{code_dir}/inference.py is missing: the artifact cannot be served")
        self._service = handler_service.HandlerService()
        # The container puts <model dir>/code first on the path; do the same, and keep the
        # same-named modules already imported here (tests import container_code/) out of the way
        # so that the artifact's own copies are the ones served.
        shadowed = {name: sys.modules.pop(name) for name in SERVING_MODULE_NAMES if name in sys.modules}
        sys.path.insert(0, str(code_dir))
        try:
            self._service.initialize(ServingContext(self.model_dir))
        finally:
            sys.path.remove(str(code_dir))
            for name in SERVING_MODULE_NAMES:
                sys.modules.pop(name, None)
            sys.modules.update(shadowed)

    def invoke(self, body: bytes | str, content_type: str | None = None, accept: str | None = None) -> Response:
        """One request, its body as TorchServe hands it over (bytes, undecoded)."""
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers = {name: value for name, value in (("Content-Type", content_type), ("Accept", accept)) if value is not None}
        context = ServingContext(self.model_dir, headers)
        (result,) = self._service.handle([{"body": bytearray(payload)}], context)
        text = result.decode("utf-8") if isinstance(result, (bytes, bytearray)) else str(result)
        return Response(context.status_code, context.content_type, text)
