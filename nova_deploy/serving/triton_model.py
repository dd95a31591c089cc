"""The Python-backend model Triton runs for a repository written by `nova-deploy triton-repo`.

Imported only inside Triton's Python backend stub (which provides triton_python_backend_utils).
One instance (one stub process) holds one Pipeline. Triton's dynamic batcher hands execute() a
list of requests; their images run as one Pipeline call per group of equal settings. A bad request
gets its own error response naming the problem; the other requests of the batch are served.
"""
import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from nova_deploy.errors import NovaDeployError
from nova_deploy.serving.repository import open_pipeline
from nova_deploy.serving.requests import generate_rows, parse_request

OUTPUTS = ("image", "trace")


def _error(message: str, code_name: str = "INVALID_ARG"):
    code = getattr(pb_utils.TritonError, code_name, None)
    err = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=err)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        device = "cpu" if args["model_instance_kind"] == "CPU" else f"cuda:{args['model_instance_device_id']}"
        version_dir = Path(args["model_repository"]) / args["model_version"]
        threads = int(params.get("nova_threads", "0")) or None
        try:
            self.pipe = open_pipeline(version_dir, params.get("nova_backend", "onnxruntime"), device, threads)
        except NovaDeployError as e:  # the load fails with this line in the server's log and status
            raise pb_utils.TritonModelException(f"cannot load {version_dir}: {e}") from None
        self.spec = self.pipe.spec

    def execute(self, requests):
        responses = [None] * len(requests)
        rows, want_trace = [], False
        for i, request in enumerate(requests):
            if request.is_cancelled():
                responses[i] = _error("request cancelled", "CANCELLED")
                continue
            inputs = {t.name(): t.as_numpy() for t in request.inputs()}
            try:
                rows += parse_request(i, inputs, self.spec)
            except NovaDeployError as e:
                responses[i] = _error(str(e))
                continue
            want_trace |= "trace" in _wanted_outputs(request)
        results = generate_rows(self.pipe, rows, want_trace)
        for i, request in enumerate(requests):
            if responses[i] is None:
                responses[i] = self._response(request, i, results)
        return responses

    def _response(self, request, i, results):
        mine = [results[key] for key in sorted(k for k in results if k[0] == i)]
        failed = next((r.error for r in mine if r.error), None)
        if failed:
            return _error(failed, "INTERNAL")
        outputs = []
        wanted = _wanted_outputs(request)
        if "image" in wanted:
            outputs.append(pb_utils.Tensor("image", np.stack([r.image_3HW for r in mine])))
        if "trace" in wanted:
            traces = np.array([[(r.trace_json or "").encode()] for r in mine], dtype=np.object_)
            outputs.append(pb_utils.Tensor("trace", traces))
        return pb_utils.InferenceResponse(output_tensors=outputs)

    def finalize(self):
        self.pipe.close()


def _wanted_outputs(request):
    """The outputs the client asked for; a request that names none gets all of them."""
    names = request.requested_output_names()
    return set(names) if names else set(OUTPUTS)
