r"""The Hamiltonian spring dynamics task of the `"LieTransformer: Equivariant
Self-Attention for Lie Groups" <https://arxiv.org/abs/2012.10885>`_ paper
(introduced with LieConv, `"Generalizing Convolutional Neural Networks for
Equivariance to Lie Groups on Arbitrary Continuous Data"
<https://arxiv.org/abs/2002.12880>`_).

State layout, used by every function of this module: a state :obj:`z` has
shape :obj:`[..., 2, N, D]`, where index :obj:`0` of dimension :obj:`-3`
holds the positions :math:`\mathbf{q}` and index :obj:`1` the momenta
:math:`\mathbf{p}` of :obj:`N` particles in :obj:`D` dimensions (:obj:`D = 2`
for this task).  System parameters :obj:`sys_params` have shape
:obj:`[..., N, 2]`, with the masses :math:`m_i` in column :obj:`0` and the
spring constants :math:`k_i` in column :obj:`1`.  Trajectories have shape
:obj:`[B, T, 2, N, D]`.
"""
import hashlib
import math
import os
import shutil
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset

from torch_lie.groups.rotations import so2_matrix
from torch_lie.utils import atomic_save, check_choice, check_int

__all__ = [
    'SpringDynamics',
    'SpringSample',
    'spring_hamiltonian',
    'spring_vector_field',
    'spring_energy_drift',
    'spring_symmetries',
]

# Systems generated (and seeded) together.  Part of the data's identity: the
# random draws of a system depend on its chunk, so changing this changes the
# data (and is recorded in the cache files).
_SYSTEMS_PER_CHUNK = 100

# Bumped whenever the generated data changes for the same arguments.
_FORMAT_VERSION = 1


def _check_state(z: Tensor, sys_params: Tensor):
    if not isinstance(z, Tensor) or z.dim() < 3 or z.size(-3) != 2:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z)
        raise ValueError(f"'z' must be a tensor of shape [..., 2, N, D] "
                         f"(positions, momenta) (got {shape})")
    if (not isinstance(sys_params, Tensor) or sys_params.dim() < 2
            or sys_params.size(-1) != 2
            or sys_params.size(-2) != z.size(-2)):
        shape = (tuple(sys_params.shape) if isinstance(sys_params, Tensor)
                 else type(sys_params))
        raise ValueError(f"'sys_params' must be a tensor of shape [..., N, 2] "
                         f"(masses, spring constants) with N = {z.size(-2)} "
                         f"as in 'z' (got {shape})")


def spring_hamiltonian(z: Tensor, sys_params: Tensor) -> Tensor:
    r"""The energy of a system of particles coupled by springs,

    .. math::
        H(\mathbf{q}, \mathbf{p}) = \sum_{i=1}^N
        \frac{\| \mathbf{p}_i \|^2}{2 m_i} + \frac{1}{2} \sum_{i=1}^N
        \sum_{j=1}^N k_i k_j \| \mathbf{q}_i - \mathbf{q}_j \|^2,

    where the double sum runs over all *ordered* pairs :math:`(i, j)`, so that
    the potential equals
    :math:`\sum_{i < j} k_i k_j \| \mathbf{q}_i - \mathbf{q}_j \|^2`
    (every unordered pair counted once, with weight one).

    Args:
        z (torch.Tensor): States of shape :obj:`[..., 2, N, D]` (positions
            :obj:`z[..., 0, :, :]`, momenta :obj:`z[..., 1, :, :]`).
        sys_params (torch.Tensor): Masses and spring constants of shape
            :obj:`[..., N, 2]` (columns :math:`m`, :math:`k`), broadcast
            against the leading dimensions of :obj:`z`.

    Returns:
        The energies, of the broadcast leading shape :obj:`[...]`
        (:obj:`[B]` for states :obj:`[B, 2, N, D]`).  Differentiable in
        both arguments.

    :rtype: :class:`torch.Tensor`
    """
    _check_state(z, sys_params)
    q, p = z[..., 0, :, :], z[..., 1, :, :]
    m, k = sys_params[..., 0], sys_params[..., 1]
    kinetic = (p.pow(2).sum(-1) / (2 * m)).sum(-1)
    diff = q.unsqueeze(-2) - q.unsqueeze(-3)  # [..., N, N, D]
    kk = k.unsqueeze(-1) * k.unsqueeze(-2)  # [..., N, N]
    potential = 0.5 * (kk * diff.pow(2).sum(-1)).sum((-2, -1))
    return kinetic + potential


def spring_energy_drift(z: Tensor, sys_params: Tensor) -> Tensor:
    r"""The relative drift :math:`|H(z_T) - H(z_0)| / H(z_0)` of the true
    energy (:func:`spring_hamiltonian`, in float64) at the end of each
    trajectory :obj:`z [B, T, 2, N, D]` with :obj:`sys_params [B, N, 2]`;
    infinite for a trajectory that is not finite (e.g. a learned roll-out
    that blew up).

    :rtype: :class:`torch.Tensor` of shape :obj:`[B]`, float64
    """
    finite = z.flatten(1).isfinite().all(1)
    drift = torch.full(finite.shape, math.inf, dtype=torch.float64,
                       device=z.device)
    energy = spring_hamiltonian(z[finite].double(),
                                sys_params[finite].double()[:, None])
    drift[finite] = ((energy[:, -1] - energy[:, 0]) / energy[:, 0]).abs()
    return drift


def _vector_field(z: Tensor, sys_params: Tensor) -> Tensor:
    q, p = z[..., 0, :, :], z[..., 1, :, :]
    m = sys_params[..., 0].unsqueeze(-1)
    k = sys_params[..., 1].unsqueeze(-1)
    # sum_j k_j (q_i - q_j) = (sum_j k_j) q_i - sum_j k_j q_j: O(N).
    k_sum = k.sum(-2, keepdim=True)
    kq_sum = (k * q).sum(-2, keepdim=True)
    dq = p / m
    dp = -2 * k * (k_sum * q - kq_sum)
    return torch.stack([dq, dp], dim=-3)


def spring_vector_field(z: Tensor, sys_params: Tensor) -> Tensor:
    r"""The Hamiltonian vector field
    :math:`\dot{\mathbf{z}} = J \nabla H(\mathbf{z})` of
    :func:`spring_hamiltonian`, in closed form:

    .. math::
        \frac{d \mathbf{q}_i}{dt} = \frac{\mathbf{p}_i}{m_i}, \qquad
        \frac{d \mathbf{p}_i}{dt} = -\frac{\partial V}{\partial \mathbf{q}_i}
        = -2 k_i \sum_{j=1}^N k_j (\mathbf{q}_i - \mathbf{q}_j).

    To integrate it with :obj:`torchdiffeq`, wrap it as
    :obj:`lambda t, z: spring_vector_field(z, sys_params)` (the system is
    autonomous).

    Args:
        z (torch.Tensor): States of shape :obj:`[..., 2, N, D]` (positions,
            momenta).
        sys_params (torch.Tensor): Masses and spring constants of shape
            :obj:`[..., N, 2]`, broadcast against the leading dimensions of
            :obj:`z`.

    Returns:
        The time derivative :math:`d\mathbf{z}/dt`, in the layout of
        :obj:`z` (with the broadcast leading shape).

    :rtype: :class:`torch.Tensor`
    """
    _check_state(z, sys_params)
    return _vector_field(z, sys_params)


def spring_symmetries(z: Tensor, rotate: bool = True, reverse: bool = True,
                      max_scale: float = 1.0,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Applies random exact symmetries of the spring dynamics to a batch of
    trajectories :obj:`[B, L, 2, N, D]`: per trajectory, a uniformly random
    rotation of :math:`\mathbf{q}` and :math:`\mathbf{p}` together, composed
    with a reflection half the time (:obj:`rotate`, :math:`O(2)`, for
    :obj:`D = 2`), and time reversal half the time (:obj:`reverse`: the
    states in reverse order with :math:`\mathbf{p}` negated), and, with
    :obj:`max_scale > 1`, the states multiplied by a factor drawn
    log-uniformly from :obj:`[1 / max_scale, max_scale]`. The Hamiltonian
    depends on distances and :math:`\|\mathbf{p}_i\|` only, and is
    quadratic (the dynamics, and RK4's steps, are linear), so the results
    are trajectories of the same systems (up to the integrator's error,
    which time reversal does not undo exactly): data augmentation for models
    without these symmetries built in, e.g. a T(2)-equivariant one.
    Scaling is a symmetry of harmonic springs only, not of central forces
    in general: it shows the model configurations wider and narrower than
    the training set's.

    Args:
        z (torch.Tensor): Trajectories :obj:`[B, L, 2, N, 2]` (e.g. the
            :obj:`z` of a batch of :class:`SpringSample`; the new initial
            states are :obj:`out[:, 0]`).
        rotate (bool, optional): Apply random rotations and reflections.
            (default: :obj:`True`)
        reverse (bool, optional): Apply random time reversals.
            (default: :obj:`True`)
        max_scale (float, optional): The largest factor of the random
            scalings (:obj:`1`: none). (default: :obj:`1.0`)
        generator (torch.Generator, optional): The random draws' generator.
            (default: :obj:`None`)
    """
    if z.dim() != 5 or z.size(-3) != 2:
        raise ValueError(f"'z' must be trajectories [B, L, 2, N, D] (got "
                         f"{list(z.shape)})")
    if not max_scale >= 1:
        raise ValueError(f"'max_scale' must be at least 1 (got {max_scale})")
    B = z.size(0)
    if rotate:
        if z.size(-1) != 2:
            raise ValueError(f"Rotations need D = 2 (got D = {z.size(-1)})")
        angle = 2 * math.pi * torch.rand(B, generator=generator,
                                         dtype=z.dtype).to(z.device)
        flip = torch.randint(2, (B,), generator=generator).to(z.device)
        sign = 1 - 2 * flip.to(z.dtype)  # det = -1 for a reflection
        columns = torch.stack([torch.ones_like(sign), sign], -1)
        rotation = so2_matrix(angle) * columns[:, None]
        z = z @ rotation.transpose(-1, -2)[:, None, None]
    if reverse:
        back = torch.rand(B, generator=generator).to(z.device) < 0.5
        flipped = z.flip(1) * z.new_tensor([1.0, -1.0]).view(2, 1, 1)
        z = torch.where(back.view(B, 1, 1, 1, 1), flipped, z)
    if max_scale > 1:
        log = math.log(max_scale) * (2 * torch.rand(B, generator=generator,
                                                    dtype=z.dtype) - 1)
        z = z * log.exp().to(z.device).view(B, 1, 1, 1, 1)
    return z


class SpringSample(NamedTuple):
    r"""One training example of :class:`SpringDynamics`: a chunk of a
    trajectory.  The default :func:`~torch.utils.data.default_collate` (and
    PyG's :class:`~torch_geometric.loader.DataLoader`) batch it field by
    field, giving a :class:`SpringSample` with a leading batch dimension
    :obj:`B`.
    """
    #: Initial state of the chunk :obj:`[2, N, D]` (equal to :obj:`z[0]`).
    z0: Tensor
    #: Times of the chunk's states relative to its start :obj:`[L + 1]`
    #: (:obj:`ts[0] = 0`); the same for all items.
    ts: Tensor
    #: Masses and spring constants :obj:`[N, 2]`.
    sys_params: Tensor
    #: The ground-truth states of the chunk :obj:`[L + 1, 2, N, D]`,
    #: initial state included.
    z: Tensor


def _integrate(z0: Tensor, sys_params: Tensor, ts: Tensor,
               substeps: int) -> Tensor:
    from torchdiffeq import odeint

    if substeps > 1:
        grid = torch.linspace(float(ts[0]), float(ts[-1]),
                              (ts.numel() - 1) * substeps + 1,
                              dtype=ts.dtype)
    else:
        grid = ts
    with torch.no_grad():
        zs = odeint(lambda t, z: _vector_field(z, sys_params), z0, grid,
                    method='rk4')
    return zs[::substeps].movedim(0, 1).contiguous()


def _sample_systems(num: int, num_particles: int, dim: int,
                    generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    opts = dict(generator=generator, dtype=torch.float64)
    m = 0.1 + 3.0 * torch.rand(num, num_particles, **opts)
    k = 5.0 * torch.rand(num, num_particles, **opts)
    q = 0.4 * torch.randn(num, num_particles, dim, **opts)
    p = 0.6 * torch.randn(num, num_particles, dim, **opts)
    return torch.stack([q, p], dim=1), torch.stack([m, k], dim=-1)


def _derived_seed(*parts: Any) -> int:
    key = '/'.join(str(part) for part in ('torch_lie.SpringDynamics', ) +
                   parts)
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], 'little') & ((1 << 63) - 1)


def _check_finite(what: str, *tensors: Tensor):
    for tensor in tensors:
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{what} contains NaN or infinite values")


class SpringDynamics(Dataset):
    r"""The Hamiltonian spring dynamics data set from the `"LieTransformer:
    Equivariant Self-Attention for Lie Groups"
    <https://arxiv.org/abs/2012.10885>`_ paper (first used by LieConv):
    trajectories of :obj:`num_particles` particles in 2D with masses
    :math:`m_i \sim \mathcal{U}(0.1, 3.1)`, coupled by springs with
    constants :math:`k_i \sim \mathcal{U}(0, 5)`, under the Hamiltonian

    .. math::
        H(\mathbf{q}, \mathbf{p}) = \sum_{i} \frac{\| \mathbf{p}_i \|^2}{2
        m_i} + \frac{1}{2} \sum_{i, j} k_i k_j \| \mathbf{q}_i -
        \mathbf{q}_j \|^2

    (sum over all ordered pairs, see :func:`spring_hamiltonian`), from
    :math:`\mathbf{q}_{i,d}(0) \sim \mathcal{N}(0, 0.4^2)` and
    :math:`\mathbf{p}_{i,d}(0) \sim \mathcal{N}(0, 0.6^2)`.  The ground
    truth is integrated in float64 with :obj:`torchdiffeq`'s fixed-step
    :obj:`"rk4"` (the 3/8-rule variant) on the :obj:`T = 500` times
    :obj:`ts = linspace(0, 5, 500)`, one step per interval
    (:math:`\Delta t = 5 / 499`) unless :obj:`substeps` is raised, using the
    closed-form :func:`spring_vector_field`.

    **Items.** Every trajectory is cut into
    :math:`C = \lfloor (T - 1 - L) / s \rfloor + 1` chunks of
    :math:`L` = :obj:`chunk_len` steps, chunk :math:`c` holding the
    :math:`L + 1` states at times :math:`t_{cs}, \ldots, t_{cs + L}`
    with the stride :math:`s` = :obj:`chunk_stride` (by default :math:`L`:
    neighbouring chunks share their boundary state, and the last
    :math:`(T - 1) \bmod L` steps are unused).  With :obj:`chunk_len=5`
    there are 99 chunks per system, with :obj:`chunk_len=100` four.  An item
    is a :class:`SpringSample` :obj:`(z0, ts, sys_params, z)` with

    * :obj:`z0 [2, N, 2]`: the chunk's initial state,
    * :obj:`ts [L + 1]`: :obj:`dataset.ts[:L + 1]`, the chunk's times
      relative to its start (the dynamics are autonomous),
    * :obj:`sys_params [N, 2]`: the masses (column 0) and spring constants
      (column 1),
    * :obj:`z [L + 1, 2, N, 2]`: the ground-truth states of the chunk,
      :obj:`z[0] == z0`,

    in the state layout of :func:`spring_hamiltonian` (positions at index 0,
    momenta at index 1 of dimension :obj:`-3`).  Items are ordered by
    system, then by chunk (see :obj:`chunk_index`).  The default collate
    function batches them into a :class:`SpringSample` of :obj:`z0 [B, 2, N,
    2]`, :obj:`ts [B, L + 1]` (identical rows), :obj:`sys_params [B, N, 2]`
    and :obj:`z [B, L + 1, 2, N, 2]`:

    .. code-block:: python

        from torch.utils.data import DataLoader
        from torchdiffeq import odeint

        loader = DataLoader(SpringDynamics(root), batch_size=100,
                            shuffle=True)
        for batch in loader:
            f = lambda t, z: model_vector_field(z, batch.sys_params)
            pred = odeint(f, batch.z0, batch.ts[0], method='rk4')
            loss = (pred.movedim(0, 1) - batch.z).pow(2).mean()

    The reference implementation instead draws one random chunk per system
    (:obj:`L + 1` = :obj:`chunk_len` states) once, unseeded; passing
    :obj:`chunks_per_system=1` gives one (seeded) chunk per system, i.e. the
    reference's number of examples per epoch.

    **Data.** The full trajectories are exposed as :obj:`trajectories
    [S, T, 2, N, 2]`, with :obj:`sys_params [S, N, 2]` and :obj:`ts [T]`
    (:obj:`S` systems).

    **Generation and caching.** Each split is generated once and cached
    under :obj:`root` as :obj:`spring_{split}_{num_systems}_{seed}.pt` (with
    suffixes for a non-default :obj:`num_particles` or :obj:`substeps`),
    written atomically.  Systems are drawn and integrated in chunks of 100,
    each chunk from its own generator seeded by :obj:`(seed, split, chunk
    index)`, so the splits differ, a system's data does not depend on
    :obj:`num_systems` (the first :obj:`n` systems are the same for every
    :obj:`num_systems >= n`) and generation is resumable: finished chunks
    are kept in :obj:`root/partial/` until the split is complete, and an
    interrupted generation restarts from them, giving bit-identical data.
    Generating the 3,000 training systems takes about 7 s on two CPU cores.

    Args:
        root (str): Directory of the cached data.
        split (str, optional): :obj:`"train"`, :obj:`"val"` or
            :obj:`"test"`. (default: :obj:`"train"`)
        n_train (int, optional): Use only the first :obj:`n_train` systems
            of the training split (nested: smaller subsets are contained in
            larger ones).  Only for :obj:`split="train"`; :obj:`None` uses
            all. (default: :obj:`None`)
        chunk_len (int, optional): Integration steps :math:`L` per item, in
            :math:`[1, T - 1]` (:obj:`5` for training, :obj:`100` for
            evaluation in the paper). (default: :obj:`5`)
        num_systems (int or dict, optional): Number of systems of the split,
            or a dictionary from split names to numbers (missing splits keep
            their defaults).  :obj:`None` uses
            :obj:`{"train": 3000, "val": 200, "test": 500}`.
            (default: :obj:`None`)
        seed (int, optional): Seed of the data; each split and chunk uses a
            seed derived from it. (default: :obj:`0`)
        num_particles (int, optional): Number of particles :obj:`N`.
            (default: :obj:`6`)
        chunk_stride (int, optional): Steps between the starts of
            consecutive chunks; :obj:`None` is :obj:`chunk_len` (chunks share
            their boundary states). The paper's protocol cuts each
            trajectory into non-overlapping chunks of :math:`S` *states*:
            :obj:`chunk_len=S - 1, chunk_stride=S, chunks_per_system=1`
            (100 chunks of 5 states, or 5 of 100). (default: :obj:`None`)
        chunks_per_system (int, optional): If set, keeps only this many
            chunks of every system, chosen at random without replacement
            (seeded by :obj:`seed`, :obj:`split` and :obj:`chunk_len`, and
            nested like :obj:`n_train`) and kept in temporal order.
            :obj:`None` keeps all :math:`C` chunks. (default: :obj:`None`)
        substeps (int, optional): RK4 steps per interval of :obj:`ts`.
            :obj:`1` is the paper's protocol; larger values give a more
            accurate ground truth (the RK4 energy error shrinks as
            :obj:`substeps ** -5`). (default: :obj:`1`)
        dtype (torch.dtype, optional): Floating point type of the returned
            tensors (data are generated and cached in float64).
            (default: :obj:`torch.float64`)
        force_reload (bool, optional): Regenerate the split even if it is
            cached. (default: :obj:`False`)
        log (bool, optional): Show a progress bar while generating.
            (default: :obj:`True`)

    Raises:
        ValueError: If :obj:`split` is unknown, :obj:`n_train`,
            :obj:`chunk_len`, :obj:`num_systems`, :obj:`num_particles`,
            :obj:`chunks_per_system` or :obj:`substeps` is out of range, or
            the data contain NaN or infinite values.
        RuntimeError: If a cached file does not match the arguments (e.g.
            written by another version); pass :obj:`force_reload=True`.
    """
    splits = ('train', 'val', 'test')
    default_num_systems = {'train': 3000, 'val': 200, 'test': 500}
    t_end = 5.0  #: Length of the trajectories in time.
    num_steps = 500  #: Number of states :obj:`T` per trajectory.
    dim = 2  #: Spatial dimension.

    def __init__(
        self,
        root: str,
        split: str = 'train',
        n_train: Optional[int] = None,
        chunk_len: int = 5,
        num_systems: Optional[Union[int, Mapping[str, int]]] = None,
        seed: int = 0,
        num_particles: int = 6,
        chunks_per_system: Optional[int] = None,
        chunk_stride: Optional[int] = None,
        substeps: int = 1,
        dtype: torch.dtype = torch.float64,
        force_reload: bool = False,
        log: bool = True,
    ):
        super().__init__()
        check_choice('split', split, self.splits)
        if num_systems is None or isinstance(num_systems, Mapping):
            counts = dict(self.default_num_systems)
            if num_systems is not None:
                unknown = set(num_systems) - set(self.splits)
                if unknown:
                    raise ValueError(f"'num_systems' has unknown splits "
                                     f"{sorted(unknown)} (expected a subset "
                                     f"of {self.splits})")
                counts.update(num_systems)
            num = counts[split]
        else:
            num = num_systems
        num = check_int('num_systems', num, 1)
        seed = check_int('seed', seed, -(1 << 63))
        num_particles = check_int('num_particles', num_particles, 1)
        substeps = check_int('substeps', substeps, 1)
        chunk_len = check_int('chunk_len', chunk_len, 1,
                              self.num_steps - 1)
        chunk_stride = check_int('chunk_stride', chunk_stride or chunk_len, 1)
        num_chunks = (self.num_steps - 1 - chunk_len) // chunk_stride + 1
        if chunks_per_system is not None:
            chunks_per_system = check_int('chunks_per_system',
                                          chunks_per_system, 1, num_chunks)
        if n_train is not None:
            if split != 'train':
                raise ValueError(f"'n_train' only applies to "
                                 f"split='train' (got split={split!r})")
            n_train = check_int('n_train', n_train, 1)
            if n_train > num:
                raise ValueError(f"'n_train' ({n_train}) exceeds the size "
                                 f"of the training split ({num} systems)")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"'dtype' must be a floating point torch.dtype "
                             f"(got {dtype!r})")

        self.root = os.path.expanduser(str(root))
        self.split = split
        self.seed = seed
        self.num_particles = num_particles
        self.substeps = substeps
        self.chunk_len = chunk_len
        self.chunk_stride = chunk_stride
        self.num_chunks = num_chunks  #: Chunks :math:`C` per trajectory.
        self.chunks_per_system = chunks_per_system
        self.log = log

        self._meta = {
            'version': _FORMAT_VERSION,
            'split': split,
            'num_systems': num,
            'seed': seed,
            'num_particles': num_particles,
            'dim': self.dim,
            'substeps': substeps,
            't_end': self.t_end,
            'num_steps': self.num_steps,
            'systems_per_chunk': _SYSTEMS_PER_CHUNK,
        }
        data = self._load_or_generate(force_reload)
        trajectories, sys_params = data['trajectories'], data['sys_params']

        if chunks_per_system is not None:
            # One row of scores per system, drawn for the whole split so that
            # the selection of a system does not depend on n_train.
            stride = [] if chunk_stride == chunk_len else [chunk_stride]
            gen = torch.Generator().manual_seed(
                _derived_seed(seed, split, 'chunks', chunk_len, *stride))
            scores = torch.rand(num, num_chunks, generator=gen)
            chunks = scores.argsort(dim=1)[:, :chunks_per_system]
            chunks = chunks.sort(dim=1).values
        else:
            chunks = torch.arange(num_chunks).expand(num, -1)

        if n_train is not None:
            # Copies, so that the rest of the split can be freed.
            trajectories = trajectories[:n_train].clone()
            sys_params = sys_params[:n_train].clone()
            chunks = chunks[:n_train]
        num_used = trajectories.size(0)

        #: Full trajectories :obj:`[S, T, 2, N, 2]`.
        self.trajectories = trajectories.to(dtype).contiguous()
        #: Masses and spring constants :obj:`[S, N, 2]`.
        self.sys_params = sys_params.to(dtype).contiguous()
        #: Times of the trajectories :obj:`[T]`.
        self.ts = data['ts'].to(dtype)
        #: (system, chunk) of every item :obj:`[len(self), 2]`.
        self.chunk_index = torch.stack([
            torch.arange(num_used).view(-1, 1).expand_as(chunks),
            chunks,
        ], dim=-1).reshape(-1, 2)
        self._chunk_ts = self.ts[:chunk_len + 1]

    @classmethod
    def paper_splits(cls, root: str, n_train: int, train_systems: int = 3000,
                     n_val: int = 2000, n_test: int = 2000,
                     n_test_long: Optional[int] = None,
                     chunks_per_system: int = 1, protocol: str = 'paper',
                     **kwargs: Any) -> Dict[str, 'SpringDynamics']:
        r"""The splits of the paper's protocol: :obj:`"train"`, one chunk
        of 5 states of each of the first :obj:`n_train` systems
        (:obj:`chunks_per_system` chunks); :obj:`"val"`, 5-state chunks of
        :obj:`min(n_val, n_train)` systems; :obj:`"test"`, 5-state chunks of
        :obj:`n_test` systems; :obj:`"test_long"`, 100-state chunks of the
        first :obj:`n_test_long` (default: all) of them. Chunks do not
        overlap and are drawn once, seeded. :obj:`protocol="shared"` cuts
        chunks of 5 and 100 *steps* (6 and 101 states) instead, as this
        library's first studies did. Other arguments (e.g. :obj:`seed`,
        :obj:`dtype`) go to every split.
        """
        check_choice('protocol', protocol, ('paper', 'shared'))

        def split(name: str, states: int, **more: Any) -> 'SpringDynamics':
            chunks = (dict(chunk_len=states - 1, chunk_stride=states)
                      if protocol == 'paper' else dict(chunk_len=states))
            return cls(root, split=name, **chunks, **more, **kwargs)

        return {
            'train': split('train', 5, n_train=n_train,
                           num_systems=train_systems,
                           chunks_per_system=chunks_per_system),
            'val': split('val', 5, num_systems=min(n_val, n_train),
                         chunks_per_system=1),
            'test': split('test', 5, num_systems=n_test, chunks_per_system=1),
            'test_long': split('test', 100, chunks_per_system=1,
                               num_systems=n_test_long or n_test),
        }

    @property
    def num_systems(self) -> int:
        r"""The number of systems :obj:`S` (after :obj:`n_train`)."""
        return self.trajectories.size(0)

    @property
    def file_name(self) -> str:
        r"""The name of the cache file of the split."""
        meta = self._meta
        name = f"spring_{meta['split']}_{meta['num_systems']}_{meta['seed']}"
        if meta['num_particles'] != 6:
            name += f"_n{meta['num_particles']}"
        if meta['substeps'] != 1:
            name += f"_sub{meta['substeps']}"
        return name + '.pt'

    @property
    def path(self) -> str:
        r"""The path of the cache file of the split."""
        return os.path.join(self.root, self.file_name)

    def __len__(self) -> int:
        return self.chunk_index.size(0)

    def __getitem__(self, idx: int) -> SpringSample:
        size = len(self)
        idx = int(idx)
        if idx < -size or idx >= size:
            raise IndexError(f'index {idx} is out of range for a data set '
                             f'of {size} items')
        system, chunk = self.chunk_index[idx].tolist()
        start = chunk * self.chunk_stride
        z = self.trajectories[system, start:start + self.chunk_len + 1]
        z = z.clone()
        return SpringSample(z[0], self._chunk_ts, self.sys_params[system], z)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({len(self)}, '
                f'split={self.split!r}, systems={self.num_systems}, '
                f'chunk_len={self.chunk_len})')

    # Generation and caching ################################################

    def _load_or_generate(self, force_reload: bool) -> Dict[str, Any]:
        path = self.path
        partial_dir = os.path.join(self.root, 'partial',
                                   os.path.splitext(self.file_name)[0])
        if force_reload:
            if os.path.exists(path):
                os.remove(path)
            shutil.rmtree(partial_dir, ignore_errors=True)
        if os.path.exists(path):
            try:
                data = torch.load(path, weights_only=True)
            except Exception as error:  # truncated, or not a cache file
                raise RuntimeError(
                    f"The cached file '{path}' is unreadable "
                    f"({type(error).__name__}); pass 'force_reload=True' (or "
                    f"delete it) to regenerate it") from None
            meta = data.get('meta') if isinstance(data, dict) else None
            if meta != self._meta:
                raise RuntimeError(
                    f"The cached file '{path}' does not match the requested "
                    f"data (cached {meta}, requested "
                    f"{self._meta}); pass 'force_reload=True' to regenerate "
                    f"it")
            _check_finite(f"The cached file '{path}'", data['trajectories'],
                          data['sys_params'])
            return data

        # Temporary files of a write that was killed: this one replaces them.
        for name in os.listdir(self.root) if os.path.isdir(self.root) else []:
            if name.startswith(f'.{self.file_name}.') and name.endswith('.tmp'):
                os.remove(os.path.join(self.root, name))
        os.makedirs(partial_dir, exist_ok=True)
        data = self._generate(partial_dir)
        atomic_save(data, path)
        shutil.rmtree(partial_dir, ignore_errors=True)
        try:  # Only succeeds if no other split is in progress.
            os.rmdir(os.path.dirname(partial_dir))
        except OSError:
            pass
        return data

    def _generate(self, partial_dir: str) -> Dict[str, Any]:
        from tqdm.auto import tqdm

        meta = self._meta
        per_chunk = meta['systems_per_chunk']
        num = meta['num_systems']
        ts = torch.linspace(0.0, self.t_end, self.num_steps,
                            dtype=torch.float64)
        num_chunks = math.ceil(num / per_chunk)

        def chunk_path(c: int) -> str:
            return os.path.join(partial_dir, f'chunk_{c:05d}.pt')

        # Chunks do not depend on the size of the split.
        chunk_meta = {k: v for k, v in meta.items() if k != 'num_systems'}

        def load_chunk(c: int, seed: int) -> Optional[Dict[str, Any]]:
            try:
                chunk = torch.load(chunk_path(c), weights_only=True)
            except Exception:  # Missing or unreadable: regenerate it.
                return None
            if (not isinstance(chunk, dict) or chunk.get('meta') != chunk_meta
                    or chunk.get('seed') != seed):
                return None
            return chunk

        # Filled chunk by chunk: peak memory is the split plus one chunk.
        trajectories = torch.empty(num, self.num_steps, 2, self.num_particles,
                                   self.dim, dtype=torch.float64)
        sys_params = torch.empty(num, self.num_particles, 2,
                                 dtype=torch.float64)
        with tqdm(total=num, unit='system', disable=not self.log,
                  desc=f'SpringDynamics ({self.split})') as bar:
            for c in range(num_chunks):
                seed = _derived_seed(meta['version'], self.seed, self.split,
                                     c)
                chunk = load_chunk(c, seed)
                if chunk is None:
                    chunk = self._generate_chunk(ts, seed)
                    chunk['meta'] = chunk_meta
                    atomic_save(chunk, chunk_path(c))
                lo = c * per_chunk
                hi = min(lo + per_chunk, num)
                trajectories[lo:hi] = chunk['trajectories'][:hi - lo]
                sys_params[lo:hi] = chunk['sys_params'][:hi - lo]
                bar.update(hi - lo)

        return {
            'trajectories': trajectories,
            'sys_params': sys_params,
            'ts': ts,
            'meta': meta,
        }

    def _generate_chunk(self, ts: Tensor, seed: int) -> Dict[str, Any]:
        # Always a full chunk, so that a system's data do not depend on how
        # many systems the split has.
        gen = torch.Generator().manual_seed(seed)
        z0, sys_params = _sample_systems(self._meta['systems_per_chunk'],
                                         self.num_particles, self.dim, gen)
        trajectories = _integrate(z0, sys_params, ts, self.substeps)
        _check_finite('The generated trajectories', trajectories)
        return {
            'trajectories': trajectories,
            'sys_params': sys_params,
            'seed': seed,
        }
