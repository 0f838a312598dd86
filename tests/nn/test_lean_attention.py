r"""The lean kernel of LieSelfAttentionConv (chunked edges, only the weights
saved) against the layer's plain message passing: values, weights, first
and second derivatives."""
import pytest
import torch
import torch_geometric.typing
from torch_geometric import EdgeIndex

import torch_lie.nn.conv.lean_attention as lean_attention
from torch_lie.nn import LieSelfAttentionConv

ATTENTIONS = ['softmax', 'dot_product', 'norm_exp']
COMBINES = ['sum', 'mlp', 'multiply', 'embedding']


@pytest.fixture
def small_chunks(monkeypatch):
    # Chunks of 7 edges: neighbourhoods straddle chunk boundaries.
    monkeypatch.setattr(lean_attention, 'CHUNK_EDGES', 7)


def make_conv(attention, combine, dtype=torch.float64, device='cpu'):
    torch.manual_seed(0)
    conv = LieSelfAttentionConv(
        8, 12, 5, heads=3, kernel_dim=4, attention=attention, combine=combine,
        content_dim=6 if combine == 'embedding' else None)
    return conv.to(device, dtype)


def make_graph(sort, num_nodes=9, num_edges=40, device='cpu'):
    r"""Node 8 has no neighbours; sorted edges come as an EdgeIndex sorted by
    target, as :class:`~torch_lie.nn.LieTransformer` passes them."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(num_nodes, 8, generator=g, dtype=torch.float64)
    edge_index = torch.randint(num_nodes - 1, (2, num_edges), generator=g)
    edge_attr = torch.randn(num_edges, 5, generator=g, dtype=torch.float64)
    if sort:
        perm = edge_index[1].argsort(stable=True)
        edge_index, edge_attr = edge_index[:, perm], edge_attr[perm]
        edge_index = EdgeIndex(edge_index, sparse_size=(num_nodes, num_nodes),
                               sort_order='col')
    return (x.to(device).requires_grad_(), edge_index.to(device),
            edge_attr.to(device).requires_grad_())


def derivatives(conv, lean, x, edge_index, edge_attr):
    r"""Output, weights, the gradient of a loss of both (inputs and
    parameters), and the gradient of a function of the input gradient."""
    conv.lean = lean
    out, (_, alpha) = conv(x, edge_index, edge_attr,
                           return_attention_weights=True)
    loss = (out * out.detach().cos()).sum() + alpha.sin().sum()
    params = list(conv.parameters())
    first = torch.autograd.grad(loss, [x, edge_attr] + params,
                                retain_graph=True)  # the lean backward
    grads = torch.autograd.grad(loss, [x, edge_attr] + params,
                                create_graph=True)
    second = torch.autograd.grad((grads[0]**2).sum() + (grads[1]**2).sum(),
                                 [x, edge_attr] + params,
                                 materialize_grads=True)
    return [out, alpha, *first, *grads, *second]


@pytest.mark.parametrize('sort', [True, False])
@pytest.mark.parametrize('attention', ATTENTIONS)
@pytest.mark.parametrize('combine', COMBINES)
def test_lean_matches_message_passing(small_chunks, device, sort, attention,
                                      combine):
    conv = make_conv(attention, combine, device=device)
    inputs = make_graph(sort, device=device)
    lean = derivatives(conv, True, *inputs)
    plain = derivatives(conv, False, *inputs)
    assert len(lean) == len(plain) == 2 + 3 * (2 + len(list(conv.parameters())))
    for a, b in zip(lean, plain):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    # Negative control: the comparison sees a changed derivative.
    assert not torch.allclose(lean[2], 1.001 * plain[2], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize('attention', ATTENTIONS)
def test_gradcheck_and_gradgradcheck(small_chunks, attention):
    conv = make_conv(attention, 'mlp')
    x, edge_index, edge_attr = make_graph(sort=True, num_edges=25)

    def fn(x, edge_attr):
        return conv(x, edge_index, edge_attr)

    assert torch.autograd.gradcheck(fn, (x, edge_attr))
    assert torch.autograd.gradgradcheck(fn, (x, edge_attr))


def test_segment_csr_and_pure_torch_agree(small_chunks, monkeypatch):
    conv = make_conv('softmax', 'sum')
    x, edge_index, edge_attr = make_graph(sort=True)
    results = []
    scatter_options = [False]
    if torch_geometric.typing.WITH_TORCH_SCATTER:
        scatter_options.append(True)
    for with_scatter in scatter_options + [None]:  # None: message passing
        if with_scatter is not None:
            monkeypatch.setattr(torch_geometric.typing, 'WITH_TORCH_SCATTER',
                                with_scatter)
        conv.lean = with_scatter is not None
        out = conv(x, edge_index, edge_attr)
        grads = torch.autograd.grad(out.pow(2).sum(), [x, edge_attr])
        results.append((out, *grads))
    for result in results[:-1]:
        for a, b in zip(result, results[-1]):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def saved_elements(conv, lean, num_edges):
    r"""Elements saved for backward by one forward on 50 nodes, not counting
    the inputs and parameters."""
    x, edge_index, edge_attr = make_graph(sort=True, num_nodes=50,
                                          num_edges=num_edges)
    conv.lean = lean
    given = {t.data_ptr() for t in [x, edge_attr, *conv.parameters()]}
    saved = []

    def pack(t):
        if t.data_ptr() not in given and t.dtype.is_floating_point:
            saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        conv(x, edge_index, edge_attr)
    return sum(saved)


@pytest.mark.parametrize('combine', COMBINES)
def test_lean_saves_only_the_weights_per_edge(combine):
    r"""Per edge (the slope from 400 to 800 edges on the same nodes), the
    lean kernel saves the [E, H] weights and nothing else."""
    conv = make_conv('softmax', combine)
    slope = {lean: (saved_elements(conv, lean, 800)
                    - saved_elements(conv, lean, 400)) / 400
             for lean in (True, False)}
    assert slope[True] == conv.heads
    # The message passing keeps gathered [E, H, C] and [E, H, K] tensors.
    assert slope[False] > 10 * conv.heads


def test_no_grad_and_frozen_parameters():
    conv = make_conv('softmax', 'sum')
    x, edge_index, edge_attr = make_graph(sort=True)
    with torch.no_grad():
        out = conv(x, edge_index, edge_attr)
    conv.requires_grad_(False)
    torch.testing.assert_close(conv(x, edge_index, edge_attr), out)
    grad, = torch.autograd.grad(conv(x, edge_index, edge_attr).sum(), x)
    conv.lean = False
    expected, = torch.autograd.grad(conv(x, edge_index, edge_attr).sum(), x)
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=1e-10)


def test_torch_func_transforms_run_the_message_passing():
    r"""torch.func.grad (the Hamiltonian vector field's) differentiates the
    layer through its message passing: the same gradient as autograd."""
    conv = make_conv('softmax', 'sum')
    x, edge_index, edge_attr = make_graph(sort=True)

    def energy(edge_attr):
        return conv(x, edge_index, edge_attr).pow(2).sum()

    grad = torch.func.grad(energy)(edge_attr)
    expected, = torch.autograd.grad(energy(edge_attr), edge_attr)
    torch.testing.assert_close(grad, expected, atol=1e-12, rtol=1e-10)
