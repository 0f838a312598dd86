from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Module
from torchdiffeq import odeint

from torch_lie.nn.models.lie_transformer import LieTransformer, paper_config
from torch_lie.transforms import Lift
from torch_lie.transforms.lift import trusted_positions
from torch_lie.utils import check_compiler


def check_state(z: Tensor, sys_params: Tensor) -> None:
    r"""Raises a :class:`ValueError` unless :obj:`z [B, 2, N, d]` (positions
    and momenta of :math:`N` particles) and :obj:`sys_params [B, N, P]` fit
    together and :obj:`z` is finite."""
    if z.dim() != 4 or z.size(1) != 2:
        raise ValueError(f"'z' must have shape [B, 2, N, d] (positions and "
                         f"momenta; got {list(z.shape)})")
    if sys_params.dim() != 3 or sys_params.shape[:2] != (z.size(0),
                                                         z.size(2)):
        raise ValueError(f"'sys_params' must have shape [B, N, P] = "
                         f"[{z.size(0)}, {z.size(2)}, P] for 'z' of shape "
                         f"{list(z.shape)} (got {list(sys_params.shape)})")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("'z' contains NaN or infinite values")


class Dynamics(Module):
    r"""Base class of learned dynamics :math:`\dot{z} = f_\theta(z)` of
    particle systems, with states :obj:`z [B, 2, N, d]` (positions and
    momenta) and per-particle system parameters :obj:`sys_params [B, N, P]`.
    Subclasses implement :meth:`forward`, the vector field."""
    def forward(self, z: Tensor, sys_params: Tensor) -> Tensor:
        raise NotImplementedError

    def rollout(self, z0: Tensor, ts: Tensor, sys_params: Tensor,
                method: str = 'rk4') -> Tensor:
        r"""Integrates the dynamics from :obj:`z0 [B, 2, N, d]` over the
        times :obj:`ts [T]` with :func:`torchdiffeq.odeint` (a fixed-grid
        :obj:`"rk4"` step per interval by default) and returns the
        trajectories :obj:`[B, T, 2, N, d]`; those of a model that blows up
        turn non-finite from there on."""
        check_state(z0, sys_params)
        check = getattr(getattr(self, 'hamiltonian', None), 'check_sys_params',
                        None)
        if check is not None:  # e.g. positive masses
            check(sys_params)
        if ts.dim() != 1 or ts.numel() < 1:
            raise ValueError(f"'ts' must be a non-empty 1-D tensor of times "
                             f"(got shape {list(ts.shape)})")
        # The initial state is checked; a state that blows up later gives
        # non-finite values (a diverged roll-out), not an error, compiled or
        # not.
        with trusted_positions():
            zs = odeint(lambda t, z: self(z, sys_params), z0, ts.to(z0),
                        method=method)
        return zs.transpose(0, 1)

    @torch.no_grad()
    def rollout_errors(self, loader: Iterable) -> Tuple[Tensor, Tensor]:
        r"""Rolls out, in evaluation mode and uncompiled, from the initial
        states of the batches :obj:`(z0, ts, sys_params, z)` of
        :obj:`loader` (e.g. a :class:`~torch.utils.data.DataLoader` of
        :class:`~torch_lie.datasets.SpringDynamics`), and returns on the CPU
        the squared errors :obj:`[B, T]` against :obj:`z` (mean over the
        coordinates; infinite from where a roll-out blew up) and the
        predicted trajectories :obj:`[B, T, 2, N, d]`."""
        self.eval()
        device = next(self.parameters()).device
        errors, preds = [], []
        with self.eager():
            for batch in loader:
                z0, ts, sys_params, z = (t.to(device) for t in batch)
                pred = self.rollout(z0, ts[0], sys_params)
                errors.append((pred - z).pow(2).flatten(2).mean(2).cpu())
                preds.append(pred.cpu())
        return torch.cat(errors).nan_to_num(torch.inf), torch.cat(preds)

    @contextmanager
    def eager(self) -> Iterator['Dynamics']:
        r"""Runs the vector field uncompiled inside the block, e.g. for
        evaluation, whose other batch shapes and gradient mode would each
        be compiled anew (nothing to switch off unless a subclass
        compiles)::

            with torch.no_grad(), model.eager():
                pred = model.rollout(z0, ts, sys_params)
        """
        yield self


class HamiltonianDynamics(Dynamics):
    r"""Hamiltonian dynamics :math:`\dot{q} = \partial H / \partial p`,
    :math:`\dot{p} = -\partial H / \partial q` of a learned Hamiltonian.

    The gradient of :math:`H` is taken with :func:`torch.func.grad`, which
    keeps the graph to the parameters whenever gradients are enabled, so
    that a loss on roll-outs trains :math:`H` (a double backward), and works
    under :func:`torch.no_grad` for evaluation.

    Args:
        hamiltonian (Module): Maps :obj:`(z [B, 2, N, d], sys_params)` to
            energies :obj:`[B]`, e.g. :class:`SeparableHamiltonian`.
        compile (bool, optional): If set to :obj:`True`, the vector field
            (with its gradient) is compiled with :func:`torch.compile`,
            which fuses the elementwise chains of the double backward: about
            1.7x faster training steps on CPU for the paper's spring model,
            after a compilation of a minute or two per input shape; see
            :meth:`Dynamics.eager` for evaluation. Needs a C++ compiler.
            (default: :obj:`False`)

    Raises:
        ValueError: If :obj:`compile` is set and no C++ compiler is found.
    """
    def __init__(self, hamiltonian: Module, compile: bool = False):
        super().__init__()
        if compile:
            check_compiler()
        self.hamiltonian = hamiltonian
        self.compile = compile
        self._compiled: Optional[Callable] = None

    def _energy(self, z: Tensor, sys_params: Tensor) -> Tensor:
        return self.hamiltonian(z, sys_params).sum()

    def _vector_field(self, z: Tensor, sys_params: Tensor) -> Tensor:
        # Made per call: a stored torch.func.grad would hold this instance,
        # and copies of the module (deepcopy, EMA) would use its weights.
        grad = torch.func.grad(self._energy)(z, sys_params)
        return torch.stack([grad[:, 1], -grad[:, 0]], dim=1)

    def forward(self, z: Tensor, sys_params: Tensor) -> Tensor:
        if not self.compile:
            return self._vector_field(z, sys_params)
        if self._compiled is None:  # unbound, so that copies use their own
            self._compiled = torch.compile(type(self)._vector_field,
                                           dynamic=False)
        # No host check of the positions inside the graph (roll-outs check
        # their initial state).
        with trusted_positions():
            return self._compiled(self, z, sys_params)

    @contextmanager
    def eager(self) -> Iterator['HamiltonianDynamics']:
        compile, self.compile = self.compile, False
        try:
            yield self
        finally:
            self.compile = compile


class SeparableHamiltonian(Module):
    r"""The Hamiltonian :math:`H(q, p) = \sum_i \frac{|p_i|^2}{2 m_i} +
    V_\theta(q, s)` with the masses :math:`m` in column 0 of the system
    parameters :math:`s` and a learned potential :math:`V_\theta`.

    Args:
        potential (Module): Maps :obj:`(q [B, N, d], sys_params [B, N, P])`
            to potential energies :obj:`[B]`.
    """
    def __init__(self, potential: Module):
        super().__init__()
        self.potential = potential

    def check_sys_params(self, sys_params: Tensor) -> None:
        r"""Raises a :class:`ValueError` unless the masses are positive and
        finite (a zero or negative mass would give NaN roll-outs)."""
        m = sys_params[..., 0]
        if not bool(((m > 0) & m.isfinite()).all()):
            raise ValueError(f"the masses (column 0 of 'sys_params') must be "
                             f"positive and finite (got min {float(m.min())})")

    def forward(self, z: Tensor, sys_params: Tensor) -> Tensor:
        q, p = z[:, 0], z[:, 1]
        kinetic = (p * p).sum(-1) / (2 * sys_params[..., 0])
        return kinetic.sum(-1) + self.potential(q, sys_params)


class LiePotential(Module):
    r"""An invariant potential :math:`V_\theta(q, s)`: a
    :class:`~torch_lie.nn.LieTransformer` on the particles, lifted by
    :obj:`lift`, with the system parameters :math:`s` as particle features.
    Invariant to the group's action on the positions (exactly for
    deterministic lifts, in distribution for random ones).

    Args:
        in_channels (int): Number of system parameters per particle.
        lift (Lift, optional): The lift of the particles, e.g.
            :obj:`Lift('SE2', num_samples=4)`. (default: :obj:`Lift('T2')`,
            full attention)
        hidden_channels (int, optional): Width. (default: :obj:`160`)
        **kwargs (optional): Arguments of
            :class:`~torch_lie.nn.LieTransformer` (e.g. :obj:`num_layers`,
            :obj:`heads`). Its :obj:`final_norm` defaults to :obj:`False`
            here: a final LayerNorm leaves the energy's scale (about 30 for
            the spring systems) to the output MLP's weights, and training
            on spring roll-outs was then about 25x worse after 300 steps.
    """
    def __init__(self, in_channels: int, lift: Optional[Lift] = None,
                 hidden_channels: int = 160, **kwargs):
        super().__init__()
        kwargs.setdefault('final_norm', False)
        self.transformer = LieTransformer(in_channels, hidden_channels, 1,
                                          lift or Lift('T2'), **kwargs)

    @classmethod
    def paper(cls, **kwargs) -> 'LiePotential':
        r"""The potential of the paper's spring-dynamics model (its T(2)
        LieTransformer, 841,641 parameters), with :obj:`kwargs` overriding
        its arguments."""
        config = {**paper_config('springs'), **kwargs}
        config.pop('out_channels')
        return cls(config.pop('in_channels'), **config)

    def forward(self, q: Tensor, sys_params: Tensor,
                generator: Optional[torch.Generator] = None) -> Tensor:
        lifted = self.transformer.lift.lift(q, sys_params,
                                            generator=generator)
        return self.transformer(lifted).view(-1)


def _mlp(in_channels: int, hidden_channels: int, out_channels: int,
         num_layers: int) -> torch.nn.Sequential:
    layers, width = [], in_channels
    for _ in range(num_layers - 1):
        layers += [torch.nn.Linear(width, hidden_channels), torch.nn.SiLU()]
        width = hidden_channels
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, out_channels))


def _centred(q: Tensor) -> Tensor:
    # Positions relative to their mean: the baselines are then invariant to
    # translations, as the original's are.
    return q - q.mean(dim=1, keepdim=True)


class MLPDynamics(Dynamics):
    r"""The non-invariant "FC" baseline, as the original implementation's:
    an MLP vector field of the centred positions, the momenta and the
    system parameters, :math:`[q - \bar{q}, p, s]` flattened (213,016
    parameters for 6 particles in 2D with the defaults).

    Args:
        num_particles (int): Particles per system.
        dim (int): Space dimension.
        num_params (int): System parameters per particle.
        hidden_channels (int, optional): Width. (default: :obj:`256`)
        num_layers (int, optional): Linear layers (one more than hidden
            layers). (default: :obj:`5`)
    """
    def __init__(self, num_particles: int, dim: int, num_params: int,
                 hidden_channels: int = 256, num_layers: int = 5):
        super().__init__()
        size = 2 * num_particles * dim
        self.mlp = _mlp(size + num_particles * num_params, hidden_channels,
                        size, num_layers)

    def forward(self, z: Tensor, sys_params: Tensor) -> Tensor:
        inputs = torch.cat([_centred(z[:, 0]).flatten(1), z[:, 1].flatten(1),
                            sys_params.flatten(1)], dim=1)
        return self.mlp(inputs).view_as(z)


class MLPPotential(Module):
    r"""The "HFC" baseline's potential, as the original implementation's:
    an MLP of the centred positions and the system parameters,
    :math:`V(q - \bar{q}, s)` (204,033 parameters for 6 particles in 2D
    with the defaults). With :class:`SeparableHamiltonian` (the known
    kinetic term) and :class:`HamiltonianDynamics` it is the HFC model.
    Arguments as for :class:`MLPDynamics`."""
    def __init__(self, num_particles: int, dim: int, num_params: int,
                 hidden_channels: int = 256, num_layers: int = 5):
        super().__init__()
        size = num_particles * (dim + num_params)
        self.mlp = _mlp(size, hidden_channels, 1, num_layers)

    def forward(self, q: Tensor, sys_params: Tensor) -> Tensor:
        inputs = torch.cat([_centred(q).flatten(1), sys_params.flatten(1)],
                           dim=1)
        return self.mlp(inputs).view(-1)
