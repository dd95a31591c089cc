"""The exported graphs chained in ONNX Runtime, with the reference sampler's decisions, generate
exactly the tokens of `nova_deploy.sampler.generate` (a test-local loop; the runtime builds on it)."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from nova_deploy.export.exporter import export_model
from nova_deploy.export.manifest import CODEBOOK, read_manifest
from nova_deploy.nova.policy import parse_policy
from nova_deploy.sampler import generate
from nova_deploy.sampling import SamplingParams, combine_cfg, guidance_at, sample_with_top_k_top_p_
from export_sources import one_thread, randomised_source  # noqa: F401  (one_thread: autouse fixture)


class OrtExport:
    """Every graph of an export in a CPU session, named as in the manifest."""

    def __init__(self, out_dir: Path):
        self.dir, self.manifest = Path(out_dir), read_manifest(out_dir)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.sessions = {name: ort.InferenceSession(str(self.dir / g["file"]), so, providers=["CPUExecutionProvider"])
                         for name, g in self.manifest["graphs"].items()}
        self.codebook_VC = torch.from_numpy(np.load(self.dir / CODEBOOK))

    def run(self, name: str, **feeds) -> dict:
        s = self.sessions[name]
        arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in feeds.items()}
        return {o.name: torch.from_numpy(a) for o, a in zip(s.get_outputs(), s.run(None, arrays))}


@torch.no_grad()
def ort_generate(ex: OrtExport, labels_B: torch.Tensor, g_seed: int, params: SamplingParams, policy):
    """The sampler's loop, every model computation replaced by a graph."""
    m = ex.manifest
    patch_nums, prunable = m["scales"]["patch_nums"], m["scales"]["prunable"]
    K, N = len(patch_nums), m["model"]["var_config"]["depth"]
    B = labels_B.shape[0]
    rng = torch.Generator().manual_seed(g_seed)
    decider = policy.begin(B, patch_nums, N)
    cond = ex.run("cond", label_B=labels_B)
    x = cond["x_first_BlC"]
    k_all, v_all = [None] * N, [None] * N
    prev = None
    Cv, P = m["model"]["vqvae_config"]["z_channels"], patch_nums[-1]
    f_hat = torch.zeros(B, Cv, P, P)
    tokens = []
    for si, pn in enumerate(patch_nums):
        l = pn * pn
        plan = decider.plan(si, x)
        feeds = {"x_BlC": x, "ada_NB6C": cond["ada_NB6C"], "head_ada_B2C": cond["head_ada_B2C"]}
        for i in range(N):
            if si > 0:
                feeds[f"k_prefix_{i}"], feeds[f"v_prefix_{i}"] = k_all[i], v_all[i]
        if prunable[si]:
            for i in range(N):
                idx = None if plan is None else plan.idx_N[i]
                feeds[f"keep_idx_{i}"] = (torch.arange(l).expand(2 * B, l) if idx is None else idx.repeat(2, 1)).contiguous()
                feeds[f"attn_cache_{i}"], feeds[f"ffn_cache_{i}"] = prev[f"attn_branch_{i}"], prev[f"ffn_branch_{i}"]
        else:
            assert plan is None, f"the policy pruned scale {si}, which this export cannot prune"
        out = ex.run(f"scale_{si:02d}", **feeds)
        for i in range(N):
            k_all[i] = out[f"k_new_{i}"] if si == 0 else torch.cat((k_all[i], out[f"k_new_{i}"]), dim=2)
            v_all[i] = out[f"v_new_{i}"] if si == 0 else torch.cat((v_all[i], out[f"v_new_{i}"]), dim=2)
        prev = out
        logits = combine_cfg(out["logits_BlV"], guidance_at(si, K, params.cfg))
        if policy.name != "none":  # the fixed policy reads the entropy only (no branch statistics)
            decider.observe(si, logits, [], [])
        idx_Bl = sample_with_top_k_top_p_(logits, rng=rng, top_k=params.top_k, top_p=params.top_p)[:, :, 0]
        tokens.append(idx_Bl)
        h = ex.codebook_VC[idx_Bl].transpose(1, 2).reshape(B, Cv, pn, pn).contiguous()
        if si < K - 1:
            nxt = ex.run(f"next_input_{si:02d}", f_hat_BChw=f_hat, h_BChw=h)
            f_hat, x = nxt["f_hat_next_BChw"], nxt["x_next_BlC"]
        else:
            f_hat = ex.run("final_fhat", f_hat_BChw=f_hat, h_BChw=h)["f_hat_next_BChw"]
    img = ex.run("decoder", f_hat_BChw=f_hat)["img_B3HW"]
    return tokens, img.add(1).mul(0.5)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    torch.set_num_threads(1)
    return export_model(randomised_source("small"), tmp_path_factory.mktemp("small") / "export", max_batch=2)


@pytest.mark.slow
@pytest.mark.parametrize("policy_text", ["none", "fixed:0,0,0,0,0,0.5,0.5"])
def test_ort_chain_reproduces_the_reference_sampler(small_export, policy_text):
    src = randomised_source("small")  # what small_export was made from
    labels = torch.tensor([3, 7])
    params = SamplingParams(cfg=1.5, top_k=0, top_p=0.0)
    policy = parse_policy(policy_text)
    ref = generate(src.var, B=2, label_B=labels, g_seed=11, params=params, policy=policy)
    ex = OrtExport(small_export.out_dir)
    tokens, images = ort_generate(ex, labels, 11, params, policy)
    for si, (got, want) in enumerate(zip(tokens, ref.idx_Bl)):
        assert torch.equal(got, want), f"scale {si}: {int((got != want).sum())} of {got.numel()} tokens differ"
    torch.testing.assert_close(images, ref.images, atol=1e-4, rtol=0)
    if policy.name == "fixed":  # pruning changed the result: the filled tokens are not what the dense run computes
        dense = generate(src.var, B=2, label_B=labels, g_seed=11, params=params)
        assert not torch.equal(dense.idx_Bl[-1], ref.idx_Bl[-1])
