"""The explicit per-scale path computes what the whole-pyramid teacher-forcing path computes."""
import pytest
import torch

from model_factories import randomised_pair
from nova_deploy.models.var_blocks import LayerKeep
from nova_deploy.generation.model_executor import KVCache


def _random_pair(shared_aln: bool):
    return randomised_pair("small", shared_aln=shared_aln)


@pytest.mark.parametrize("shared_aln", [False, True])
def test_scale_steps_equal_teacher_forcing(shared_aln):
    var, vae = _random_pair(shared_aln)
    B = 2
    labels = torch.tensor([1, 4])
    idx = [torch.randint(0, vae.vocab_size, (B, pn * pn)) for pn in var.patch_nums]
    x_in = vae.quantize.idxBl_to_var_input(idx)
    # teacher forcing sees the 2B rows as plain batch rows: feed conditional and null labels
    full = var(torch.cat([labels, torch.full_like(labels, var.num_classes)]), x_in.repeat(2, 1, 1))

    cond = var.condition(labels)
    kv = KVCache.for_model(var, 2 * B, torch.float32, "cpu")
    x = var.first_token_map(cond)
    for si, (bg, ed) in enumerate(var.begin_ends):
        if si > 0:
            x = var.word_embed(x_in[:, bg - 1:ed - 1]) + var.lvl_pos_1LC()[:, bg:ed]
            x = x.repeat(2, 1, 1)
        pre = [kv.prefix(i) for i in range(var.depth)]
        out = var.scale_step(x, cond, [p[0] for p in pre], [p[1] for p in pre])
        for i in range(var.depth):
            kv.append(i, out.k_new[i], out.v_new[i])
        torch.testing.assert_close(out.logits_BlV, full[:, bg:ed], atol=2e-4, rtol=1e-4)


def test_keeping_every_token_equals_dense():
    var, _ = _random_pair(False)
    cond = var.condition(torch.tensor([0, 2]))
    x = torch.randn(4, 9, var.C)
    k0 = [torch.randn(4, var.num_heads, 5, var.C // var.num_heads) for _ in range(var.depth)]
    v0 = [torch.randn_like(k) for k in k0]
    dense = var.scale_step(x, cond, k0, v0)
    everyone = torch.arange(9).expand(4, 9)
    keeps = [LayerKeep(everyone, torch.full((4, 9, var.C), 7.0), torch.full((4, 9, var.C), 7.0))] * var.depth
    pruned = var.scale_step(x, cond, k0, v0, keeps)
    assert torch.equal(dense.logits_BlV, pruned.logits_BlV)


def test_pruned_tokens_receive_the_fill_and_kv_has_kept_tokens_only():
    var, _ = _random_pair(False)
    cond = var.condition(torch.tensor([0, 2]))
    x = torch.randn(4, 9, var.C)
    kept = torch.tensor([[0, 3, 8]]).expand(4, 3)
    fill = torch.randn(4, 9, var.C)
    keeps = [LayerKeep(kept, fill, fill * 2)] * var.depth
    out = var.scale_step(x, cond, [None] * var.depth, [None] * var.depth, keeps)
    pruned_positions = [1, 2, 4, 5, 6, 7]
    for i in range(var.depth):
        assert out.k_new[i].shape[2] == 3
        assert torch.equal(out.attn_branch[i][:, pruned_positions], fill[:, pruned_positions])
        assert torch.equal(out.ffn_branch[i][:, pruned_positions], 2 * fill[:, pruned_positions])
        assert not torch.equal(out.attn_branch[i][:, [0, 3, 8]], fill[:, [0, 3, 8]])
