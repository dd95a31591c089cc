"""A real tritonserver (the nvidia-pytriton wheel's, on CPU, 127.0.0.1) serving a repository that
`nova-deploy triton-repo` wrote over the bundled model's export, checked through tritonclient
(HTTP and gRPC) against Pipeline.generate in this process."""
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tritonclient_grpc  # the `serve` extra, in `dev` too
import tritonclient.http as tritonclient_http
from tritonclient.utils import InferenceServerException

from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from nova_deploy.runtime.pipeline import Pipeline
from nova_deploy.serving.config import ServingOptions
from nova_deploy.serving.local_server import LocalTritonServer, http_client_per_thread, make_overlay
from nova_deploy.serving.repository import write_repository
from nova_deploy.serving.requests import images_uint8

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # a full export of the bundled model and a server start
MODEL = "nova"
REQUEST_TIMEOUT_S = 120  # every client call is bounded


@pytest.fixture(scope="module")
def repository(bundled_full_export, tmp_path_factory):
    # a queue delay long enough that concurrent requests are batched even when the clients' threads
    # get the CPU late: the suite runs another worker on the same 2 cores
    return write_repository(bundled_full_export, tmp_path_factory.mktemp("triton") / "repo",
                            ServingOptions(name=MODEL, threads=1, max_queue_delay_us=100_000))


@pytest.fixture(scope="module")
def server(triton_install, repository, tmp_path_factory):
    work = tmp_path_factory.mktemp("triton_server")
    overlay = make_overlay(triton_install, REPO, work / "overlay")
    srv = LocalTritonServer(triton_install, repository, overlay, work / "tritonserver.log")
    try:
        yield srv.start(timeout_s=600)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def pipe(bundled_full_export):
    with Pipeline.from_dir(bundled_full_export, backend="onnxruntime", threads=1) as p:
        yield p


@pytest.fixture
def http(server):
    return tritonclient_http.InferenceServerClient(server.http_url, network_timeout=REQUEST_TIMEOUT_S)


@pytest.fixture
def grpc(server):
    return tritonclient_grpc.InferenceServerClient(server.grpc_url)


def _inputs(module, rows, **settings):
    """rows: [(class_id, seed)]; settings: cfg / top_k / top_p / policy / draw, one value for every row."""
    n = len(rows)
    arrays = {"class_id": np.array([[c] for c, _ in rows], np.int32), "seed": np.array([[s] for _, s in rows], np.int64)}
    dtypes = {"class_id": "INT32", "seed": "INT64", "cfg": "FP32", "top_k": "INT32", "top_p": "FP32", "policy": "BYTES", "draw": "BYTES"}
    for name, value in settings.items():
        np_type = {"FP32": np.float32, "INT32": np.int32, "BYTES": np.object_}[dtypes[name]]
        arrays[name] = np.full((n, 1), value.encode() if dtypes[name] == "BYTES" else value, dtype=np_type)
    result = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), dtypes[name])
        tensor.set_data_from_numpy(array)
        result.append(tensor)
    return result


def _infer(client, module, rows, **settings):
    kwargs = {} if module is tritonclient_http else {"client_timeout": REQUEST_TIMEOUT_S}
    return client.infer(MODEL, _inputs(module, rows, **settings), **kwargs)


def _alone(pipe, class_id, seed, **settings):
    """What the server should answer for one image: Pipeline.generate on it alone, as uint8."""
    return images_uint8(pipe.generate([class_id], seeds=[seed], **settings).images)[0]


def _good_request_still_served(server, http, pipe):
    assert server.alive() and http.is_server_live() and http.is_model_ready(MODEL)
    image = _infer(http, tritonclient_http, [(2, 77)]).as_numpy("image")[0]
    assert np.array_equal(image, _alone(pipe, 2, 77))


def test_health_readiness_and_metadata(server, http, grpc, pipe):
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(MODEL)
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(MODEL)
    hw = pipe.spec.vae.image_size
    for meta in (http.get_model_metadata(MODEL), grpc.get_model_metadata(MODEL, as_json=True)):
        inputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]}
        outputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["outputs"]}
        assert inputs == {"class_id": ("INT32", [-1, 1]), "seed": ("INT64", [-1, 1]), "cfg": ("FP32", [-1, 1]),
                          "top_k": ("INT32", [-1, 1]), "top_p": ("FP32", [-1, 1]), "policy": ("BYTES", [-1, 1]),
                          "draw": ("BYTES", [-1, 1])}
        assert outputs == {"image": ("UINT8", [-1, 3, hw, hw]), "trace": ("BYTES", [-1, 1])}
    config = http.get_model_config(MODEL)
    assert config["max_batch_size"] == pipe.max_batch == 8
    assert config["dynamic_batching"]["preferred_batch_size"] == [2, 4, 8]


@pytest.mark.parametrize("policy", ["none", "nova"])
def test_images_equal_pipeline_for_requests_sent_one_at_a_time(server, http, grpc, pipe, policy):
    requests = [((0, 1), {}), ((3, 2), {"cfg": 3.0}), ((7, -5), {"top_k": 50}), ((9, 2 ** 40), {"top_p": 0.9}),
                ((4, 3), {"draw": "inverse-cdf"})]
    for i, ((class_id, seed), settings) in enumerate(requests):
        client, module = (http, tritonclient_http) if i % 2 == 0 else (grpc, tritonclient_grpc)
        result = _infer(client, module, [(class_id, seed)], policy=policy, **settings)
        image = result.as_numpy("image")
        assert image.dtype == np.uint8 and image.shape == (1, 3, 32, 32)
        assert np.array_equal(image[0], _alone(pipe, class_id, seed, policy=policy, **settings)), (policy, i)
        trace = json.loads(result.as_numpy("trace")[0, 0])
        assert trace["policy"] == policy and trace["seed"] == seed and trace["classes"] == [class_id]
        assert len(trace["images"][0]["entropy_curve"]) == len(pipe.spec.patch_nums)


def test_a_request_of_several_images_is_one_row_each(server, http, pipe):
    rows = [(1, 10), (1, 11), (6, 10)]
    images = _infer(http, tritonclient_http, rows).as_numpy("image")
    for image, (class_id, seed) in zip(images, rows):
        assert np.array_equal(image, _alone(pipe, class_id, seed))


def _executions(http):
    stats = http.get_inference_statistics(MODEL)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def _executions_once_counted(http, inferences, timeout_s=30.0):
    """Statistics once at least `inferences` are counted: the Python backend records a batch's
    statistics after its responses are sent, so a client can hold its image before the count moves."""
    deadline = time.monotonic() + timeout_s
    counted = _executions(http)
    while counted[0] < inferences and time.monotonic() < deadline:
        time.sleep(0.05)
        counted = _executions(http)
    return counted


IDENTITY_REQUESTS = 64  # tools/triton_load.py --identity measures 256 (docs/SERVING.md)


@pytest.mark.parametrize("policy", ["none", "nova"])
def test_batched_identity_figure(server, http, pipe, policy, record_property):
    """One-image requests from 16 concurrent clients, batched by Triton, against each image alone.
    policy none: every image identical (per-image streams, fp32). nova: kept token counts are the
    batch's maximum (docs/NOVA.md section 7), so a batched image may differ; the figure is reported."""
    n = IDENTITY_REQUESTS
    rows = [(i % 10, 1000 + i) for i in range(n)]
    expected = [_alone(pipe, c, s, policy=policy) for c, s in rows]
    inferences, executions = _executions(http)
    client = http_client_per_thread(server.http_url, REQUEST_TIMEOUT_S)

    def send(i):
        return _infer(client(), tritonclient_http, [rows[i]], policy=policy).as_numpy("image")[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        served = list(pool.map(send, range(n)))
    inferences2, executions2 = _executions_once_counted(http, inferences + n)
    batches = executions2 - executions
    assert inferences2 - inferences == n and batches <= n / 2, "Triton did not batch the requests"
    assert all(image.shape == expected[0].shape for image in served)
    identical = sum(np.array_equal(a, b) for a, b in zip(served, expected))
    figure = f"policy {policy}: {identical}/{n} identical batched and alone ({n / batches:.1f} images per execution)"
    record_property("identity", figure)
    print(figure)
    if policy == "none":
        assert identical == n, figure


def _expected_in_batches(pipe, rows, **settings):
    """Images of rows (class, seed) with per-image seeds, computed 8 at a time: with policy none an
    image does not depend on its batch (tests/runtime/test_per_image_seeds.py)."""
    out = []
    for k in range(0, len(rows), pipe.max_batch):
        chunk = rows[k:k + pipe.max_batch]
        out += list(images_uint8(pipe.generate([c for c, _ in chunk], seeds=[s for _, s in chunk], **settings).images))
    return out


def test_32_concurrent_clients_each_get_their_own_images(server, pipe):
    """32 clients (half HTTP, half gRPC), 3 requests each with their own class, seed and cfg: all
    succeed, and each image is its own request's."""
    jobs = [(c, k, ((c * 3 + k) % 10, 500 + c * 3 + k, 1.5 if k % 2 else 3.0)) for c in range(32) for k in range(3)]
    expected = {}
    for cfg in (1.5, 3.0):
        mine = [(c, k, cls, seed) for c, k, (cls, seed, g) in jobs if g == cfg]
        images = _expected_in_batches(pipe, [(cls, seed) for _, _, cls, seed in mine], cfg=cfg)
        expected.update({(c, k): image for (c, k, _, _), image in zip(mine, images)})

    def client_session(c):
        if c % 2:
            client, module = tritonclient_grpc.InferenceServerClient(server.grpc_url), tritonclient_grpc
        else:
            client = tritonclient_http.InferenceServerClient(server.http_url, network_timeout=REQUEST_TIMEOUT_S)
            module = tritonclient_http
        out = {}
        for cc, k, (cls, seed, cfg) in jobs:
            if cc == c:
                out[(c, k)] = _infer(client, module, [(cls, seed)], cfg=cfg).as_numpy("image")[0]
        return out

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = {}
        for part in pool.map(client_session, range(32)):
            results.update(part)
    assert len(results) == 96
    mixed = [key for key, image in results.items() if not np.array_equal(image, expected[key])]
    assert not mixed, f"{len(mixed)} of 96 images are not their request's: {mixed[:5]}"


BAD_REQUESTS = {
    "class id out of range": (lambda m: _inputs(m, [(99, 1)]), ["class_id [99] out of range", "0..9"]),
    "unknown policy": (lambda m: _inputs(m, [(1, 1)], policy="bogus"), ["unknown policy 'bogus'", "nova"]),
    "missing input": (lambda m: _inputs(m, [(1, 1)])[:1], ["seed"]),
    "wrong dtype": (lambda m: _wrong_dtype(m), ["class_id", "INT32"]),
    "batch above max": (lambda m: _inputs(m, [(1, s) for s in range(9)]), ["8"]),
}


def _wrong_dtype(module):
    tensor = module.InferInput("class_id", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0]], np.float32))
    return [tensor, _inputs(module, [(1, 1)])[1]]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_an_error_naming_the_problem_and_the_server_keeps_serving(server, http, grpc, pipe,
                                                                                     protocol, case):
    client, module = (http, tritonclient_http) if protocol == "http" else (grpc, tritonclient_grpc)
    make, words = BAD_REQUESTS[case]
    with pytest.raises(InferenceServerException) as e:
        client.infer(MODEL, make(module))
    message = str(e.value)
    assert all(w in message for w in words), message
    _good_request_still_served(server, http, pipe)


def test_a_bad_request_batched_with_good_ones_fails_alone(server, pipe):
    def send(i):
        client = tritonclient_http.InferenceServerClient(server.http_url, network_timeout=REQUEST_TIMEOUT_S)
        try:
            return _infer(client, tritonclient_http, [(99 if i == 3 else i, i)]).as_numpy("image")[0]
        except InferenceServerException as e:
            return str(e)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(8)))
    assert "class_id [99] out of range" in results[3]
    for i, image in enumerate(results):
        if i != 3:
            assert np.array_equal(image, _alone(pipe, i, i)), i


def test_unload_and_load_through_the_repository_api(server, http, grpc, pipe):
    grpc.unload_model(MODEL)
    deadline = time.monotonic() + 60
    while http.is_model_ready(MODEL) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not http.is_model_ready(MODEL)
    with pytest.raises(InferenceServerException):
        _infer(http, tritonclient_http, [(1, 1)])
    http.load_model(MODEL)
    _good_request_still_served(server, http, pipe)


def test_a_repository_whose_export_was_changed_is_refused_at_load(server, http, repository):
    tampered = repository / "tampered"
    shutil.copytree(repository / MODEL, tampered)
    try:
        config = tampered / "config.pbtxt"
        config.write_text(config.read_text().replace(f'name: "{MODEL}"', 'name: "tampered"'))
        weights = tampered / "1" / "export" / "weights.bin"
        data = bytearray(weights.read_bytes())
        data[1000] ^= 1
        weights.write_bytes(bytes(data))
        with pytest.raises(InferenceServerException) as e:
            http.load_model("tampered")
        assert "sha256 differs from the manifest" in str(e.value)
        assert not http.is_model_ready("tampered") and http.is_model_ready(MODEL)
    finally:
        http.unload_model("tampered")
        shutil.rmtree(tampered)
    # Triton's strict readiness now reports the server not ready (a model failed to load); the
    # served model stays ready and serving, which is what _good_request_still_served checks.


def test_the_server_survives_cancelled_and_timed_out_requests(server, http, grpc, pipe):
    rows = [(i, i) for i in range(8)]
    with pytest.raises(InferenceServerException) as e:  # gRPC deadline far below one execution
        grpc.infer(MODEL, _inputs(tritonclient_grpc, rows), client_timeout=0.001)
    assert "Deadline" in str(e.value) or "DEADLINE" in str(e.value)
    done = []
    call = grpc.async_infer(MODEL, _inputs(tritonclient_grpc, rows), callback=lambda result, error: done.append(error))
    call.cancel()
    impatient = tritonclient_http.InferenceServerClient(server.http_url, network_timeout=0.01)
    with pytest.raises(Exception):  # the HTTP client gives up; the server finishes the request unseen
        _infer(impatient, tritonclient_http, rows)
    _good_request_still_served(server, http, pipe)
