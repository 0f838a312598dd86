from typing import Optional, Tuple

import torch
from torch import Tensor

from torch_lie.groups._taylor import safe_norm
from torch_lie.utils.checks import check_int


class Group:
    r"""Base class of a Lie group :math:`G` acting on a homogeneous space
    :math:`X = \mathbb{R}^n`, as used by the LieTransformer from the
    `"LieTransformer: Equivariant Self-Attention for Lie Groups"
    <https://arxiv.org/abs/2012.10885>`_ paper.

    Groups are stateless: every method is a batched tensor operation over
    leading dimensions of its arguments, so one group object serves all
    devices and dtypes. Subclasses implement :meth:`exp`, :meth:`log`,
    :meth:`inv`, :meth:`compose`, :meth:`act`, :meth:`sample` and
    :obj:`_lift`; the pair embedding, the distance and the validation of
    lifts are shared.

    Log coordinates list the rotation part first, then the translation part
    (:obj:`rotation_dim` and :obj:`lie_dim` - :obj:`rotation_dim` entries).

    Attributes:
        lie_dim (int): Dimension of the Lie algebra.
        space_dim (int): Dimension :math:`n` of the space the group acts on.
        q_dim (int): Width of the orbit invariant :math:`q(x)` carried by
            each lifted element (:obj:`1`, the radius, for groups that do
            not act transitively, such as :math:`SO(n)` on
            :math:`\mathbb{R}^n`; :obj:`0` otherwise).
        rotation_dim (int): Number of rotation coordinates of :meth:`log`.
        deterministic (bool): Whether :meth:`lift` is a deterministic
            function of the positions (then :obj:`num_samples` must be
            :obj:`1`, and invariance is exact).
    """
    lie_dim: int
    space_dim: int
    q_dim: int = 0
    rotation_dim: int = 0
    deterministic: bool = False

    # ------------------------------------------------------------------
    # Group structure (implemented by subclasses).
    def exp(self, a: Tensor) -> Tensor:
        r"""Maps Lie algebra coordinates :obj:`[..., lie_dim]` to elements."""
        raise NotImplementedError

    def log(self, g: Tensor) -> Tensor:
        r"""Maps elements to Lie algebra coordinates :obj:`[..., lie_dim]`."""
        raise NotImplementedError

    def inv(self, g: Tensor) -> Tensor:
        r"""Returns the inverse :math:`g^{-1}`."""
        raise NotImplementedError

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        r"""Returns the product :math:`g h` (broadcasting leading dims)."""
        raise NotImplementedError

    def identity(self, *shape: int, dtype: Optional[torch.dtype] = None,
                 device: Optional[torch.device] = None) -> Tensor:
        r"""Returns identity elements of leading shape :obj:`shape`."""
        return self.exp(
            torch.zeros(*shape, self.lie_dim, dtype=dtype, device=device))

    def act(self, g: Tensor, pos: Tensor) -> Tensor:
        r"""Applies :math:`g` to points :obj:`pos [..., space_dim]`
        (broadcasting leading dims, so one element can move a whole cloud).
        """
        raise NotImplementedError

    def sample(self, num: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None,
               device: Optional[torch.device] = None) -> Tensor:
        r"""Draws :obj:`num` random elements: Haar-distributed rotation
        parts, standard-normal translation parts."""
        raise NotImplementedError

    def orbit_invariant(self, pos: Tensor) -> Tensor:
        r"""Returns :math:`q(x)` of shape :obj:`[N, q_dim]`, constant on the
        orbits of :math:`G` in :math:`X`."""
        return pos.new_zeros(pos.size(0), 0)

    def _lift(self, pos: Tensor, num_samples: int,
              generator: Optional[torch.Generator]) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------
    # Shared machinery.
    def lift_size(self, num_samples: int = 1) -> int:
        r"""Number of lifted elements per point for :obj:`num_samples`."""
        self._check_num_samples(num_samples)
        return num_samples

    def _check_num_samples(self, num_samples: int) -> None:
        check_int('num_samples', num_samples)
        if self.deterministic and num_samples != 1:
            raise ValueError(
                f"{self} has a deterministic lift, so 'num_samples' must be "
                f"1 (got {num_samples})")

    def lift(self, pos: Tensor, num_samples: int = 1,
             generator: Optional[torch.Generator] = None
             ) -> Tuple[Tensor, Tensor]:
        r"""Lifts every point :math:`x_i` to elements :math:`g` with
        :math:`g o = x_i` (samples of the coset :math:`g_{x_i} H`).

        The lift is differentiable in :obj:`pos`.

        Args:
            pos (torch.Tensor): Points of shape :obj:`[N, space_dim]`.
            num_samples (int, optional): Samples per point for random lifts.
                (default: :obj:`1`)
            generator (torch.Generator, optional): Random generator of the
                samples. (default: :obj:`None`)

        :rtype: (:class:`torch.Tensor`, :class:`torch.Tensor`): the elements,
            :obj:`[N * K, ...]` ordered point by point (element
            :obj:`i * K + k` lifts point :obj:`i`, with
            :obj:`K = lift_size(num_samples)`), and their orbit invariants
            :obj:`[N * K, q_dim]`.
        """
        if pos.dim() != 2 or pos.size(-1) != self.space_dim:
            raise ValueError(
                f"{self} acts on points of dimension {self.space_dim}, so "
                f"'pos' must have shape [N, {self.space_dim}] "
                f"(got {list(pos.shape)})")
        k = self.lift_size(num_samples)
        g = self._lift(pos, num_samples, generator)
        q = self.orbit_invariant(pos).repeat_interleave(k, dim=0)
        return g, q

    @property
    def embed_dim(self) -> int:
        r"""Width of :meth:`embed`."""
        return self.lie_dim

    def embed(self, g: Tensor) -> Tensor:
        r"""Coordinates of :math:`g` fed to the location kernel (the log map
        by default)."""
        return self.log(g)

    @property
    def edge_dim(self) -> int:
        r"""Width of :meth:`pair_embedding`."""
        return self.embed_dim + 2 * self.q_dim

    def pair_embedding(self, g_u: Tensor, g_v: Tensor,
                       q_u: Optional[Tensor] = None,
                       q_v: Optional[Tensor] = None) -> Tensor:
        r"""The left-invariant pair embedding
        :math:`[\mathrm{embed}(u^{-1} v), q_u, q_v]` of shape
        :obj:`[E, edge_dim]`, unchanged when both :math:`u` and :math:`v` are
        left-multiplied by any group element."""
        e = self.embed(self.compose(self.inv(g_u), g_v))
        if self.q_dim == 0:
            return e
        if q_u is None or q_v is None:
            raise ValueError(f"{self} does not act transitively: its pair "
                             f"embedding needs the orbit invariants 'q_u' and "
                             f"'q_v' of the elements")
        return torch.cat([e, q_u, q_v], dim=-1)

    def edge_attr(self, g: Tensor, edge_index: Tensor,
                  q: Optional[Tensor] = None) -> Tensor:
        r"""Pair embeddings :obj:`[E, edge_dim]` of the edges
        :obj:`edge_index [2, E]` (source :math:`v`, target :math:`u`)
        between lifted elements :obj:`g` with orbit invariants :obj:`q`: the
        attention of :math:`u` to :math:`v` sees :math:`e_{uv}`."""
        src, dst = edge_index
        if self.q_dim == 0:
            return self.pair_embedding(g[dst], g[src])
        if q is None:
            raise ValueError(f"{self} needs the orbit invariants 'q' of the "
                             f"lifted elements")
        return self.pair_embedding(g[dst], g[src], q[dst], q[src])

    def distance(self, g_u: Tensor, g_v: Tensor, alpha: float = 0.2) -> Tensor:
        r"""Left-invariant distance :math:`\alpha \|\omega\| + (1 - \alpha)
        \|t\|` between :math:`u` and :math:`v`, where :math:`(\omega, t)` are
        the rotation and translation parts of :math:`\log(u^{-1} v)`."""
        a = self.log(self.compose(self.inv(g_u), g_v))
        rot = safe_norm(a[..., :self.rotation_dim])
        trans = safe_norm(a[..., self.rotation_dim:])
        if self.rotation_dim == 0:
            return trans
        if self.rotation_dim == self.lie_dim:
            return rot
        return alpha * rot + (1 - alpha) * trans

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))
