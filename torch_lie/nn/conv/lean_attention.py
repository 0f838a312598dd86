from typing import Callable, Iterator, List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx
from torch_geometric.utils import degree, scatter, segment

#: Edges per chunk: the per-edge tensors of one chunk stay in cache, and
#: only the [E, H] logits and weights span all edges.
CHUNK_EDGES = 2048


def _chunks(num_edges: int) -> Iterator[slice]:
    for start in range(0, num_edges, CHUNK_EDGES):
        yield slice(start, start + CHUNK_EDGES)


def _segment_sum(src: Tensor, index: Tensor, ptr: Optional[Tensor],
                 num_nodes: int) -> Tensor:
    if ptr is None:
        return scatter(src, index, 0, num_nodes, reduce='sum')
    return segment(src, ptr, reduce='sum')


def in_degree(index: Tensor, ptr: Optional[Tensor], num_nodes: int,
              dtype: torch.dtype) -> Tensor:
    # Edges per target node, from ptr when the edges are sorted.
    if ptr is None:
        return degree(index, num_nodes, dtype=dtype)
    return ptr.diff().to(dtype)


class LeanAttention(torch.autograd.Function):
    r"""The edge part of :class:`~torch_lie.nn.LieSelfAttentionConv`
    (logits, normalisation, weighted sum of the values) in chunks of edges,
    keeping only the normalised weights :obj:`[E, H]` for backward, which
    recomputes each chunk's logits.

    A backward that is itself differentiated (:obj:`create_graph=True`, as
    the Hamiltonian vector field needs) recomputes the layer's plain message
    passing instead, so every order of derivative is the plain one's.
    """
    @staticmethod
    def forward(ctx: FunctionCtx, conv: torch.nn.Module,
                plain: Callable[..., Tuple[Tensor, Tensor]],
                edge_index: Tensor, ptr: Optional[Tensor], query: Tensor,
                key: Tensor, value: Tensor, edge_attr: Tensor,
                *params: Tensor) -> Tuple[Tensor, Tensor]:
        src, dst = edge_index
        num_nodes, num_edges = value.size(0), src.numel()
        logits = value.new_empty(num_edges, conv.heads)
        for e in _chunks(num_edges):
            logits[e] = conv._logits(query[dst[e]], key[src[e]],
                                     edge_attr[e])
        alpha = conv._normalise(logits, dst, ptr, num_nodes)
        del logits
        out = torch.zeros_like(value)
        for e in _chunks(num_edges):
            out.index_add_(0, dst[e], value[src[e]] * alpha[e, :, None])
        ctx.conv, ctx.plain = conv, plain
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(src, dst, ptr, query, key, value, edge_attr,
                              alpha)
        return out, alpha

    @staticmethod
    def backward(ctx: FunctionCtx, grad_out: Optional[Tensor],
                 grad_alpha: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
        src, dst, ptr, query, key, value, edge_attr, alpha = ctx.saved_tensors
        conv = ctx.conv
        inputs = [query, key, value, edge_attr, *conv._kernel_parameters()]
        needs = ctx.needs_input_grad[4:]
        if torch.is_grad_enabled():
            grads = _plain_backward(ctx.plain, inputs, needs, grad_out,
                                    grad_alpha)
        else:
            grads = _lean_backward(conv, src, dst, ptr, inputs, needs, alpha,
                                   grad_out, grad_alpha)
        return (None, None, None, None, *grads)


def _plain_backward(plain: Callable[..., Tuple[Tensor, Tensor]],
                    inputs: List[Tensor], needs: Tuple[bool, ...],
                    grad_out: Optional[Tensor],
                    grad_alpha: Optional[Tensor]) -> List[Optional[Tensor]]:
    # A differentiable backward: the plain layer's graph, recomputed. It
    # starts from aliases of the inputs, so the gradient of one input does
    # not also flow through another's history (as edge_attr's would through
    # a later layer's query); the parameters are the layer's own and appear
    # in no input's history.
    aliases = [t.view_as(t) for t in inputs[:4]]
    with torch.enable_grad():
        outputs = plain(*aliases)
    inputs = aliases + inputs[4:]
    pairs = [(o, g) for o, g in zip(outputs, (grad_out, grad_alpha))
             if g is not None]
    wanted = [t for t, need in zip(inputs, needs) if need]
    found = iter(torch.autograd.grad(
        [o for o, _ in pairs], wanted, [g for _, g in pairs],
        create_graph=True, allow_unused=True))
    return [next(found) if need else None for need in needs]


def _lean_backward(conv: torch.nn.Module, src: Tensor, dst: Tensor,
                   ptr: Optional[Tensor], inputs: List[Tensor],
                   needs: Tuple[bool, ...], alpha: Tensor,
                   grad_out: Optional[Tensor],
                   grad_alpha: Optional[Tensor]) -> List[Optional[Tensor]]:
    query, key, value, edge_attr = inputs[:4]
    num_nodes, num_edges = value.size(0), src.numel()
    grads: List[Optional[Tensor]] = [
        torch.zeros_like(t) if need else None for t, need in zip(inputs, needs)]

    # The weighted sum: gradients of the weights and the values.
    grad_weights = (torch.zeros_like(alpha) if grad_alpha is None
                    else grad_alpha.clone())
    if grad_out is not None:
        for e in _chunks(num_edges):
            out_i = grad_out[dst[e]]
            grad_weights[e] += (out_i * value[src[e]]).sum(-1)
            if needs[2]:
                grads[2].index_add_(0, src[e], out_i * alpha[e, :, None])

    # The normalisation.
    if conv.attention == 'softmax':
        total = _segment_sum(alpha * grad_weights, dst, ptr, num_nodes)
        grad_logits = alpha * (grad_weights - total[dst])
    elif conv.attention == 'norm_exp':  # alpha = exp(logits) / degree
        grad_logits = alpha * grad_weights
    else:  # alpha = logits / degree
        deg = in_degree(dst, ptr, num_nodes, alpha.dtype)
        grad_logits = grad_weights / deg.clamp(min=1)[dst, None]
    del grad_weights

    # The logits, recomputed chunk by chunk: the gathered inputs are leaves,
    # so no gradient of all nodes is made per chunk.
    wanted = [i for i, need in enumerate(needs) if need and i != 2]
    for e in _chunks(num_edges):
        with torch.enable_grad():
            gathered = {0: query[dst[e]], 1: key[src[e]], 3: edge_attr[e]}
            leaves = {i: t.detach().requires_grad_(needs[i])
                      for i, t in gathered.items()}
            logits = conv._logits(leaves[0], leaves[1], leaves[3])
            found = torch.autograd.grad(
                logits, [leaves.get(i, inputs[i]) for i in wanted],
                grad_logits[e], allow_unused=True)
        for i, grad in zip(wanted, found):
            if grad is None:
                continue
            if i == 0:
                grads[0].index_add_(0, dst[e], grad)
            elif i == 1:
                grads[1].index_add_(0, src[e], grad)
            elif i == 3:
                grads[3][e] = grad
            else:
                grads[i] += grad
    return grads
