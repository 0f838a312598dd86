import math

import pytest
import torch
import torch.nn.functional as F

from torch_lie.nn import LieSelfAttentionConv
from torch_lie.transforms.lift import complete_graphs


def reference(conv, x, edge_index, edge_attr):
    r"""The layer's maths, written out node by node and head by head."""
    H, C, K = conv.heads, conv.head_dim, conv.kernel_dim
    q = conv.lin_query(x).view(x.size(0), H, -1)
    k = conv.lin_key(x).view(x.size(0), H, -1)
    v = conv.lin_value(x).view(-1, H, C)
    W1 = conv.kernel_in.weight.view(H, K, -1)
    b1 = conv.kernel_in.bias.view(H, K)
    out = torch.zeros(x.size(0), H, C, dtype=x.dtype)
    for u in range(x.size(0)):
        nbrs = (edge_index[1] == u).nonzero().flatten()
        if nbrs.numel() == 0:
            continue
        for h in range(H):
            logits = []
            for e in nbrs:
                j = edge_index[0, e]
                content = (q[u, h] @ k[j, h]) / math.sqrt(C)
                z = W1[h] @ edge_attr[e] + b1[h]
                if conv.combine == 'mlp':
                    z = z + content * conv.kernel_content[h]
                if conv.combine == 'embedding':
                    c = conv.lin_content(torch.cat([q[u, h], k[j, h]]))
                    z = z + c @ conv.kernel_content[h]
                z = F.silu(z) @ conv.kernel_hidden[h]
                z = z + conv.kernel_hidden_bias[h, 0]
                loc = F.silu(z) @ conv.kernel_out[h, :, 0]
                loc = loc + conv.kernel_out_bias[h, 0, 0]
                logits.append({'sum': content + loc, 'multiply': content * loc,
                               'mlp': loc, 'embedding': loc}[conv.combine])
            logits = torch.stack(logits)
            if conv.attention == 'softmax':
                w = torch.softmax(logits, 0)
            else:
                w = logits / len(nbrs)
                if conv.attention == 'norm_exp':
                    w = logits.exp() / len(nbrs)
            out[u, h] = (w[:, None] * v[edge_index[0, nbrs], h]).sum(0)
    return conv.lin_out(out.view(x.size(0), -1))


def random_graph(num_nodes=7, num_edges=30, edge_dim=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(num_nodes, 8, generator=g, dtype=dtype)
    edge_index = torch.randint(num_nodes - 1, (2, num_edges), generator=g)
    edge_attr = torch.randn(num_edges, edge_dim, generator=g, dtype=dtype)
    return x, edge_index, edge_attr  # the last node has no neighbours


@pytest.mark.parametrize('attention', ['softmax', 'dot_product', 'norm_exp'])
@pytest.mark.parametrize('combine', ['sum', 'mlp', 'multiply', 'embedding'])
def test_matches_reference(attention, combine):
    torch.manual_seed(0)
    x, edge_index, edge_attr = random_graph()
    conv = LieSelfAttentionConv(8, 12, 5, heads=3, kernel_dim=4,
                                attention=attention, combine=combine,
                                content_dim=6 if combine == 'embedding' else None,
                                ).double()
    out, (ei, alpha) = conv(x, edge_index, edge_attr,
                            return_attention_weights=True)
    assert out.shape == (7, 12) and alpha.shape == (30, 3)
    assert torch.equal(ei, edge_index)
    torch.testing.assert_close(out, reference(conv, x, edge_index, edge_attr),
                               atol=1e-12, rtol=1e-10)
    if attention == 'softmax':
        sums = torch.zeros(7, 3, dtype=alpha.dtype).index_add_(0, edge_index[1], alpha)
        has_nbrs = torch.bincount(edge_index[1], minlength=7) > 0
        torch.testing.assert_close(sums[has_nbrs], torch.ones_like(sums[has_nbrs]))
    # A node without neighbours receives nothing but the output bias.
    torch.testing.assert_close(out[-1], conv.lin_out.bias)


@pytest.mark.parametrize('attention', ['softmax', 'dot_product', 'norm_exp'])
@pytest.mark.parametrize('combine', ['sum', 'mlp', 'multiply', 'embedding'])
def test_complete_graphs_kernel_matches_reference(attention, combine):
    r"""With graph_size, the batched-products kernel computes the same
    attention (and weights, in edge order) on complete graphs."""
    torch.manual_seed(0)
    x = torch.randn(3 * 4, 8, dtype=torch.float64)
    edge_index = complete_graphs(3, 4)
    edge_attr = torch.randn(edge_index.size(1), 5, dtype=torch.float64)
    conv = LieSelfAttentionConv(8, 12, 5, heads=3, kernel_dim=4,
                                attention=attention, combine=combine,
                                content_dim=6 if combine == 'embedding' else None,
                                ).double()
    out, (_, alpha) = conv(x, edge_index, edge_attr, graph_size=4,
                           return_attention_weights=True)
    ref, (_, ref_alpha) = conv(x, edge_index, edge_attr,
                               return_attention_weights=True)
    torch.testing.assert_close(out, reference(conv, x, edge_index, edge_attr),
                               atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-12, rtol=1e-10)


def test_permutation_equivariance():
    x, edge_index, edge_attr = random_graph()
    conv = LieSelfAttentionConv(8, 12, 5, heads=3).double()
    perm = torch.randperm(7)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(7)
    out = conv(x, edge_index, edge_attr)
    edge_perm = torch.randperm(edge_index.size(1))
    out_perm = conv(x[perm], inv[edge_index][:, edge_perm], edge_attr[edge_perm])
    torch.testing.assert_close(out_perm, out[perm], atol=1e-12, rtol=1e-12)


def test_repr_and_reset_parameters():
    conv = LieSelfAttentionConv(16, 32, 6, heads=4)
    assert repr(conv) == 'LieSelfAttentionConv(16, 32, edge_dim=6, heads=4)'
    torch.manual_seed(3)
    conv.reset_parameters()
    first = [p.clone() for p in conv.parameters()]
    torch.manual_seed(3)
    conv.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(first, conv.parameters()))
    assert all(p.std() > 0 for name, p in conv.named_parameters()
               if 'bias' not in name)
    # He-initialised location kernel: its logits vary with the embedding.
    edge_attr = torch.randn(500, 6)
    assert conv.location_kernel(edge_attr).std(1).min() > 0.1


def test_dropout_only_in_training():
    x, edge_index, edge_attr = random_graph(dtype=torch.float32)
    conv = LieSelfAttentionConv(8, 12, 5, heads=3, dropout=0.5).eval()
    torch.testing.assert_close(conv(x, edge_index, edge_attr),
                               conv(x, edge_index, edge_attr))
    conv.train()
    assert not torch.allclose(conv(x, edge_index, edge_attr),
                              conv(x, edge_index, edge_attr))


def test_errors():
    with pytest.raises(ValueError, match='divisible'):
        LieSelfAttentionConv(8, 10, 5, heads=3)
    for args, kwargs, message in [
            ((8, 12, 5), dict(kernel_dim=0), "'kernel_dim' must be >= 1"),
            ((0, 12, 5), {}, "'in_channels' must be >= 1"),
            ((8, 12, 2.5), {}, "'edge_dim' must be an int"),
            ((8, 12, 5), dict(dropout=-0.1), "'dropout' must be in")]:
        with pytest.raises(ValueError, match=message):
            LieSelfAttentionConv(*args, **kwargs)
    with pytest.raises(ValueError, match='attention'):
        LieSelfAttentionConv(8, 12, 5, attention='linear')
    with pytest.raises(ValueError, match='combine'):
        LieSelfAttentionConv(8, 12, 5, combine='concat')
    conv = LieSelfAttentionConv(8, 12, 5)
    x, edge_index, edge_attr = random_graph(edge_dim=6, dtype=torch.float32)
    with pytest.raises(ValueError, match='edge_dim=5'):
        conv(x, edge_index, edge_attr)
    with pytest.raises(ValueError, match="'edge_attr' has 3 rows"):
        conv(x, edge_index, edge_attr[:3, :5])
    with pytest.raises(ValueError, match='graph_size=4'):
        conv(x, edge_index, edge_attr[:, :5], graph_size=4)
    with pytest.raises(ValueError, match="'content_dim' goes with"):
        LieSelfAttentionConv(8, 12, 5, combine='embedding')
    # Bipartite input (PyG's (x_src, x_dst)) and mixed dtypes, by name.
    with pytest.raises(TypeError, match='not bipartite'):
        conv((x, x), edge_index, edge_attr[:, :5])
    with pytest.raises(ValueError, match="'x' is torch.float32 but "
                                         "'edge_attr' is torch.float64"):
        conv(x, edge_index, edge_attr[:, :5].double())
    with pytest.raises(ValueError, match="'content_dim' goes with"):
        LieSelfAttentionConv(8, 12, 5, content_dim=4)
    for heads in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="'heads'"):
            LieSelfAttentionConv(8, 12, 5, heads=heads)


@pytest.mark.parametrize('combine', ['sum', 'mlp'])
def test_compiles_without_graph_breaks(combine):
    x, edge_index, edge_attr = random_graph(dtype=torch.float32)
    conv = LieSelfAttentionConv(8, 12, 5, heads=3, combine=combine)
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    torch.testing.assert_close(compiled(x, edge_index, edge_attr),
                               conv(x, edge_index, edge_attr))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_on_device(device, dtype):
    x, edge_index, edge_attr = random_graph(dtype=dtype)
    conv = LieSelfAttentionConv(8, 12, 5, heads=3).to(device, dtype)
    out = conv(x.to(device), edge_index.to(device), edge_attr.to(device))
    assert out.device.type == device.type and out.dtype == dtype
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())


def test_paper_initialisation_of_the_location_mlps():
    torch.manual_seed(0)
    conv = LieSelfAttentionConv(8, 16, edge_dim=3, heads=2, kernel_dim=32,
                                combine='mlp', kernel_init='paper')
    first = [conv.kernel_in.weight, conv.kernel_in.bias, conv.kernel_hidden,
             conv.kernel_hidden_bias, conv.kernel_content]
    for t in first:  # uniform in [-0.25, 0.25], biases too
        assert t.abs().max() <= 0.25 and t.abs().max() > 0.2
    for t in (conv.kernel_out, conv.kernel_out_bias):
        assert t.abs().max() <= 1.0 and t.abs().max() > 0.5
    he = LieSelfAttentionConv(8, 16, edge_dim=3, heads=2, kernel_dim=32)
    assert he.kernel_in.weight.abs().max() > 1.0  # sqrt(6 / 3)
    assert not he.kernel_in.bias.any()
    with pytest.raises(ValueError, match='kernel_init'):
        LieSelfAttentionConv(8, 16, edge_dim=3, kernel_init='xavier')


def test_paper_presets_use_the_paper_initialisation():
    from torch_lie.nn.models import LiePotential
    conv = LiePotential.paper().transformer.blocks[0].attn
    assert conv.kernel_init == 'paper'
    assert conv.kernel_in.weight.abs().max() <= 0.25
