r"""Checks that functions of point clouds or lifted elements are invariant
or equivariant, in the way of e3nn's :obj:`assert_equivariant`: the group
action is computed in float64, the function runs in each dtype, and the
error is compared with a tolerance per dtype."""
import copy
from typing import Any, Callable, Dict, Iterable, Optional

import torch
from torch import Tensor
from torch_geometric.data import Data

from torch_lie.groups import Group
from torch_lie.utils.checks import check_int

#: Default absolute tolerances on the largest output error, per dtype.
TOLERANCES: Dict[torch.dtype, float] = {
    torch.float64: 1e-9,
    torch.float32: 1e-4,
}

Action = Callable[[Tensor, Tensor], Tensor]


def _action(group: Group, on: str) -> Action:
    if on == 'points':
        return group.act
    if on == 'elements':
        return group.compose
    raise ValueError(f"'on' must be 'points' or 'elements' (got '{on}')")


def equivariance_error(fn: Callable[[Tensor], Tensor], x: Tensor,
                       act: Action, elements: Tensor,
                       act_out: Optional[Action] = None,
                       dtype: torch.dtype = torch.float64) -> float:
    r"""The largest error :math:`|f(h \cdot x) - h \cdot f(x)|` over the
    group elements :obj:`elements [num, ...]`, with :math:`h \cdot x`
    computed in float64 and :math:`f` evaluated in :obj:`dtype`.
    :obj:`act_out=None` means :math:`f` should be invariant."""
    x64 = x.to(torch.float64)
    out = fn(x64.to(dtype)).to(torch.float64)
    errors = []
    for h in elements.to(torch.float64):
        moved = fn(act(h, x64).to(dtype)).to(torch.float64)
        expected = out if act_out is None else act_out(h, out)
        errors.append((moved - expected).detach().abs().max())
    return float(torch.stack(errors).max())


def assert_equivariant(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    group: Group,
    on: str = 'points',
    act_out: Optional[Action] = None,
    elements: Optional[Tensor] = None,
    num_elements: int = 4,
    dtypes: Iterable[torch.dtype] = (torch.float32, torch.float64),
    tolerances: Optional[Dict[torch.dtype, float]] = None,
    generator: Optional[torch.Generator] = None,
) -> Dict[torch.dtype, float]:
    r"""Asserts that :obj:`fn` is invariant (or, with :obj:`act_out`,
    equivariant) under :obj:`group`, and returns the error per dtype.

    Args:
        fn (callable): The function, called on inputs of each dtype in
            :obj:`dtypes`; it must run in that dtype (e.g. by casting its
            model).
        x (torch.Tensor): Points :obj:`[N, n]` (:obj:`on="points"`, moved by
            :meth:`~torch_lie.groups.Group.act`) or lifted elements
            (:obj:`on="elements"`, left-multiplied by
            :meth:`~torch_lie.groups.Group.compose`).
        group (Group): The group.
        on (str, optional): :obj:`"points"` or :obj:`"elements"`.
            (default: :obj:`"points"`)
        act_out (callable, optional): Action :obj:`act_out(h, y)` on the
            output; :obj:`None` checks invariance. (default: :obj:`None`)
        elements (torch.Tensor, optional): Group elements to test; by default
            :obj:`num_elements` draws of :meth:`~torch_lie.groups.Group.sample` (for
            :math:`T(2) \rtimes C_k`, elements of that subgroup).
            (default: :obj:`None`)
        num_elements (int, optional): Number of random elements.
            (default: :obj:`4`)
        dtypes (iterable, optional): Dtypes to run :obj:`fn` in.
            (default: :obj:`(torch.float32, torch.float64)`)
        tolerances (dict, optional): Absolute tolerance per dtype.
            (default: :obj:`TOLERANCES`)
        generator (torch.Generator, optional): Generator of the elements.
            (default: :obj:`None`)
    """
    tolerances = {**TOLERANCES, **(tolerances or {})}
    if elements is None:
        check_int('num_elements', num_elements)
        elements = group.sample(num_elements, generator, torch.float64,
                                x.device)
    if len(elements) == 0:
        raise ValueError("'elements' is empty: nothing would be tested")
    act = _action(group, on)
    errors = {}
    for dtype in dtypes:
        err = equivariance_error(fn, x, act, elements, act_out, dtype)
        errors[dtype] = err
        if not err <= tolerances[dtype]:
            kind = 'invariant' if act_out is None else 'equivariant'
            raise AssertionError(
                f"Not {kind} under {group} acting on {on} in {dtype}: "
                f"largest error {err:.3e} > tolerance {tolerances[dtype]:.1e}")
    return errors


def assert_invariant_in_distribution(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    group: Group,
    num_draws: int = 64,
    num_elements: int = 2,
    z: float = 5.0,
    generator: Optional[torch.Generator] = None,
) -> float:
    r"""Asserts that a random function of points (e.g. a model behind a
    Monte Carlo lift) has the same mean output on :obj:`x` and on moved
    copies :math:`h \cdot x`: the difference of the means over
    :obj:`num_draws` calls must lie within :obj:`z` standard errors. Runs in
    float64 and returns the largest difference in standard errors."""
    # Two draws at least for a variance; one element at least to test.
    check_int('num_draws', num_draws, low=2)
    check_int('num_elements', num_elements)
    x = x.to(torch.float64)

    def draws(points: Tensor) -> Tensor:
        out = torch.stack([fn(points).detach().to(torch.float64)
                           for _ in range(num_draws)])
        if out.numel() == 0 or not bool(out.isfinite().all()):
            raise AssertionError(f"The function's outputs are empty or not "
                                 f"finite under {group}: nothing to compare")
        return out

    ref = draws(x)
    worst = 0.0
    for h in group.sample(num_elements, generator, torch.float64, x.device):
        moved = draws(group.act(h, x))
        se = ((ref.var(0) + moved.var(0)) / num_draws).sqrt()
        score = (ref.mean(0) - moved.mean(0)).abs() / se.clamp(min=1e-12)
        worst = max(worst, float(score.max()))
    if not worst <= z:
        raise AssertionError(f"Means differ by {worst:.1f} standard errors "
                             f"(> {z}) under {group}")
    return worst


def assert_lifted_invariant(
    model: torch.nn.Module,
    data: Data,
    **kwargs: Any,
) -> Dict[torch.dtype, float]:
    r"""Asserts that a model with a lift (e.g. a
    :class:`~torch_lie.nn.LieTransformer`) is exactly invariant to moving
    the lifted elements, and returns the error per dtype: :obj:`data` is
    lifted once by :obj:`model.lift`, every element :math:`g` is
    left-multiplied by random :math:`h` and the pair embeddings are
    recomputed on the same edges. This is the invariance the model has by
    construction, exact even where a random lift makes it invariant to
    moving the points only in distribution (see
    :func:`assert_invariant_in_distribution`). A copy of the model runs in
    each dtype (:obj:`model` itself is not cast); other arguments go to
    :func:`assert_equivariant`."""
    group = model.lift.group
    lifted = model.lift(data)
    copies: Dict[torch.dtype, torch.nn.Module] = {}

    def from_elements(g: Tensor) -> Tensor:
        if g.dtype not in copies:
            copies[g.dtype] = copy.deepcopy(model).to(g.dtype)
        moved = copy.copy(lifted)
        moved.g, moved.x = g, lifted.x.to(g.dtype)
        moved.edge_attr = group.edge_attr(g, lifted.edge_index,
                                          lifted.q.to(g.dtype))
        return copies[g.dtype](moved)

    return assert_equivariant(from_elements, lifted.g, group, on='elements',
                              **kwargs)
