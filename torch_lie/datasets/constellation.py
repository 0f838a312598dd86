r"""The constellation (pattern counting) task of the `"LieTransformer:
Equivariant Self-Attention for Lie Groups" <https://arxiv.org/abs/2012.10885>`_
paper, after the constellations of `"Stacked Capsule Autoencoders"
<https://arxiv.org/abs/1906.06818>`_.

A constellation is the union of up to eight patterns of points in the plane
(two copies each of a triangle, a square, a pentagon and an "L"), each
rotated, placed at random and possibly dropped; the task is to count, for
each of the four shapes, how many copies are present (0, 1 or 2).
"""
import hashlib
import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from torch_lie.utils import atomic_save, check_choice, check_int

__all__ = [
    'CONSTELLATION_SHAPES',
    'Constellation',
    'ConstellationBatch',
    'constellation_distance_features',
    'constellation_patterns',
    'generate_constellations',
]

#: The four shapes, in the order of the columns of :obj:`y`. Pattern
#: :obj:`p` (0-7) is a copy of shape :obj:`p % 4`.
CONSTELLATION_SHAPES: Tuple[str, ...] = ('triangle', 'square', 'pentagon', 'L')

_COPIES = 2  # Copies of every shape.
_MAX_ROTATION = 0.33 * math.pi  # Per-pattern rotation U[-max, max].
_FIELD = 24.0  # Per-pattern translation U[0, _FIELD)^2.
_DROP_PROB = 0.5
_NOISE = 0.1
_VARIANT_TRANSLATION_STD = 1.0  # Translation of the 'T2'/'SE2' variants.
# Constellations generated (and seeded) together: a constellation's data
# depend on its chunk, so this is part of the data's identity.
_PER_CHUNK = 1000
# Bumped whenever the generated data change for the same arguments.
_FORMAT_VERSION = 1


def _roots_of_unity(n: int) -> Tensor:
    angle = (2 * math.pi / n) * torch.arange(n, dtype=torch.float64)
    return torch.stack([angle.cos(), angle.sin()], dim=-1)


def constellation_patterns() -> Tuple[Tensor, Tensor]:
    r"""The points of the eight patterns before they are moved, in float64:
    :obj:`(points [34, 2], pattern [34])`, where :obj:`pattern` is the
    pattern (0-7) of every point and pattern :obj:`p` is a copy of
    :obj:`CONSTELLATION_SHAPES[p % 4]`. The triangle, square and pentagon
    are the 3rd, 4th and 5th roots of unity (radius 1, centred at the
    origin); the "L" is :math:`\{(1,1), (2,1), (3,1), (3,2), (3,3)\}`."""
    shapes = [
        _roots_of_unity(3),
        _roots_of_unity(4),
        _roots_of_unity(5),
        torch.tensor([[1., 1.], [2., 1.], [3., 1.], [3., 2.], [3., 3.]],
                     dtype=torch.float64),
    ]
    points, pattern = [], []
    for copy in range(_COPIES):
        for s, shape in enumerate(shapes):
            points.append(shape)
            pattern.append(torch.full((shape.size(0), ),
                                      copy * len(shapes) + s))
    return torch.cat(points), torch.cat(pattern)


class ConstellationBatch(NamedTuple):
    r"""Constellations as dense, padded tensors (:obj:`S` constellations of
    at most :obj:`N = 34` points). Valid points come first in every row;
    padding has position :obj:`0`, features :obj:`0` and pattern :obj:`-1`.
    """
    pos: Tensor  #: Positions :obj:`[S, N, 2]`.
    x: Optional[Tensor]  #: Point features :obj:`[S, N, F]` (or :obj:`None`).
    mask: Tensor  #: Valid points :obj:`[S, N]` (bool).
    pattern: Tensor  #: Pattern (0-7) of every point :obj:`[S, N]` (long).
    y: Tensor  #: Copies of each shape present :obj:`[S, 4]` (long, 0-2).


def generate_constellations(num: int,
                            generator: Optional[torch.Generator] = None,
                            dtype: torch.dtype = torch.float64
                            ) -> ConstellationBatch:
    r"""Draws :obj:`num` constellations (vectorised), as in
    :class:`Constellation`: every pattern of :func:`constellation_patterns`
    is rotated about the origin by an angle :math:`\sim \mathcal{U}[-0.33\pi,
    0.33\pi]`, translated by :math:`t \sim \mathcal{U}[0, 24)^2` and dropped
    with probability 0.5 (the drops of constellations that would keep no
    pattern are drawn again, i.e. at least one pattern is kept); the points
    are shuffled, perturbed by Gaussian noise (:math:`\sigma = 0.1`) and
    rescaled to :math:`[-1, 1]` (see :class:`Constellation`).

    Returns a :class:`ConstellationBatch` with :obj:`x=None`.
    """
    template, template_pattern = constellation_patterns()
    P, M = 2 * len(CONSTELLATION_SHAPES), template.size(0)
    opts = dict(generator=generator, dtype=torch.float64)

    angle = (2 * torch.rand(num, P, **opts) - 1) * _MAX_ROTATION
    shift = _FIELD * torch.rand(num, P, 2, **opts)
    keep = torch.rand(num, P, **opts) >= _DROP_PROB
    empty = ~keep.any(1)
    while bool(empty.any()):  # condition on at least one kept pattern
        keep[empty] = (torch.rand(int(empty.sum()), P, **opts) >= _DROP_PROB)
        empty = ~keep.any(1)
    order_key = torch.rand(num, M, **opts)
    noise = _NOISE * torch.randn(num, M, 2, **opts)

    cos, sin = angle.cos()[:, template_pattern], angle.sin()[:, template_pattern]
    px, py = template[:, 0], template[:, 1]
    pos = torch.stack([cos * px - sin * py, sin * px + cos * py], dim=-1)
    pos = pos + shift[:, template_pattern]

    # Shuffle: a random order of the kept points, dropped points last.
    present = keep[:, template_pattern]
    perm = (order_key + 2.0 * (~present)).argsort(dim=1)
    pos = pos.gather(1, perm[..., None].expand(-1, -1, 2)) + noise
    pattern = template_pattern[perm]
    count = present.sum(1)
    mask = torch.arange(M) < count[:, None]

    # Rescale: one affine map x -> a x + b (the same for both axes) per
    # constellation, taking its smallest coordinate to -1, its largest to 1.
    inf = torch.tensor(math.inf, dtype=torch.float64)
    lo = torch.where(mask[..., None], pos, inf).amin((1, 2))
    hi = torch.where(mask[..., None], pos, -inf).amax((1, 2))
    pos = (pos - lo[:, None, None]) / (hi - lo)[:, None, None] * 2 - 1
    pos = torch.where(mask[..., None], pos, 0.0)
    pattern = torch.where(mask, pattern, -1)

    y = keep.view(num, _COPIES, len(CONSTELLATION_SHAPES)).sum(1)
    return ConstellationBatch(pos.to(dtype), None, mask, pattern, y)


def _move(pos: Tensor, mask: Tensor, variant: str,
          generator: Optional[torch.Generator]) -> Tensor:
    num = pos.size(0)
    opts = dict(generator=generator, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(num, **opts)
    shift = _VARIANT_TRANSLATION_STD * torch.randn(num, 2, **opts)
    pos = pos.to(torch.float64)
    if variant == 'SE2':
        cos, sin = angle.cos()[:, None], angle.sin()[:, None]
        x, y = pos[..., 0], pos[..., 1]
        pos = torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1)
    pos = pos + shift[:, None]
    return torch.where(mask[..., None], pos, 0.0)


def constellation_distance_features(pos: Tensor, mask: Optional[Tensor] = None,
                                    num_features: int = 33) -> Tensor:
    r"""The invariant content features of the reference implementation:
    every point's distances to the *other* points of its constellation,
    sorted in descending order and padded with zeros at the end to
    :obj:`num_features` columns (or truncated to the largest
    :obj:`num_features` distances). With 34 points at most, 33 columns hold
    all distances; a constellation of :math:`n` points has :math:`n - 1`
    non-zero entries per point.

    Args:
        pos (torch.Tensor): Positions :obj:`[..., N, 2]` (or any dimension).
        mask (torch.Tensor, optional): Valid points :obj:`[..., N]`; padded
            points are ignored as neighbours and get all-zero features.
            (default: :obj:`None`, all valid)
        num_features (int, optional): Number of columns. (default: :obj:`33`)

    :rtype: :class:`torch.Tensor` of shape :obj:`[..., N, num_features]`
    """
    N = pos.size(-2)
    sq = (pos[..., :, None, :] - pos[..., None, :, :]).pow(2).sum(-1)
    valid = ~torch.eye(N, dtype=torch.bool, device=pos.device)
    if mask is not None:
        valid = valid & mask[..., :, None] & mask[..., None, :]
    # Masked before the square root: no NaN gradients at zero distance.
    dist = torch.where(valid, torch.where(valid, sq, 1.0).sqrt(), 0.0)
    dist = dist.sort(dim=-1, descending=True).values
    if N >= num_features:
        return dist[..., :num_features]
    return torch.nn.functional.pad(dist, (0, num_features - N))


def _derived_seed(*parts: Any) -> int:
    key = '/'.join(str(part) for part in ('torch_lie.Constellation', ) + parts)
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], 'little') & ((1 << 63) - 1)


class Constellation(InMemoryDataset):
    r"""The constellation data set of the `"LieTransformer: Equivariant
    Self-Attention for Lie Groups" <https://arxiv.org/abs/2012.10885>`_
    paper: count the copies of four shapes in a cloud of points.

    **Generation** (:func:`generate_constellations`). Eight patterns, two
    copies each of a triangle, a square and a pentagon (the 3rd, 4th and 5th
    roots of unity, radius 1) and an "L" :math:`\{(1,1), (2,1), (3,1),
    (3,2), (3,3)\}` (34 points in all, :func:`constellation_patterns`). Every
    pattern is rotated about the origin by
    :math:`\theta \sim \mathcal{U}[-0.33\pi, 0.33\pi]`, translated by
    :math:`t \sim \mathcal{U}[0, 24)^2` and dropped with probability 0.5,
    conditioned on at least one pattern being kept. The points of the kept
    patterns are shuffled, perturbed by Gaussian noise
    (:math:`\sigma = 0.1`) and rescaled to :math:`[-1, 1]` the way the
    reference did: one map :math:`x \mapsto a x + b` per constellation,
    shared by both coordinates (so shapes are preserved up to scale), that
    takes the smallest coordinate of the constellation to :math:`-1` and the
    largest to :math:`1`.

    Differences from the reference implementation (which these choices fix
    or simplify): the reference used one seed for both splits (here the
    splits, and every chunk of 1,000 constellations, have their own derived
    seeds); it kept dropped points in its arrays (masked) and let them enter
    the rescaling (here they are removed); it centred the regular polygons
    at :math:`(2, 2)` before rotating them about the origin and, through a
    homogeneous coordinate of 3, translated them by :math:`3t` (here the
    polygons are centred at the origin and every pattern is translated by
    :math:`t`); its constellations could be empty.

    **Items** are :class:`~torch_geometric.data.Data` objects with
    :obj:`pos [n, 2]` (float32, :math:`3 \le n \le 34`), :obj:`x [n, F]`
    (a column of ones, or with :obj:`features="distances"` the
    :math:`F = 33` sorted distances of :func:`constellation_distance_features`,
    invariant to rigid motions), :obj:`pattern [n]` (the pattern 0-7 of
    every point; its shape is :obj:`CONSTELLATION_SHAPES[pattern % 4]`) and
    :obj:`y [1, 4]` (long): the number of copies (0, 1 or 2) of the
    triangle, square, pentagon and "L" present, the targets of four
    three-way classification heads.

    **Variants** move every constellation (after rescaling, so points may
    leave :math:`[-1, 1]`) by a random rigid motion, seeded and independent
    of the constellations themselves, so that :obj:`variant="T2"` and
    :obj:`"SE2"` hold the same constellations as :obj:`variant=None`, moved:

    * :obj:`"T2"`: translated by :math:`t \sim \mathcal{N}(0, I_2)`;
    * :obj:`"SE2"`: rotated about the origin by
      :math:`\phi \sim \mathcal{U}[0, 2\pi)`, then translated by
      :math:`t \sim \mathcal{N}(0, I_2)`.

    **Caching.** Each (split, variant, size, seed, features) is generated
    once (10,000 constellations take well under a second) and cached in
    :obj:`root/processed/` through a temporary file and an atomic rename, so
    an interrupted generation never leaves a half-written cache. A
    constellation's data do not depend on :obj:`num_samples`: smaller splits
    are prefixes of larger ones.

    .. code-block:: python

        from torch_geometric.loader import DataLoader
        from torch_lie.datasets.constellation import Constellation

        train = Constellation('data/constellation', features='distances')
        test = Constellation('data/constellation', 'test',
                             features='distances')
        test_rotated = Constellation('data/constellation', 'test',
                                     variant='SE2', features='distances')
        loader = DataLoader(test, batch_size=100)  # then model(batch)

    Args:
        root (str): Root directory of the cache.
        split (str, optional): :obj:`"train"` or :obj:`"test"`.
            (default: :obj:`"train"`)
        variant (str, optional): :obj:`None`, :obj:`"T2"` or :obj:`"SE2"`.
            (default: :obj:`None`)
        num_samples (int, optional): Number of constellations; :obj:`None`
            means 10,000 for :obj:`"train"` and 1,000 for :obj:`"test"`.
            (default: :obj:`None`)
        seed (int, optional): Seed of the data; every split, chunk and
            variant uses a seed derived from it. (default: :obj:`0`)
        features (str, optional): :obj:`None` (:obj:`x` is a column of ones)
            or :obj:`"distances"`. (default: :obj:`None`)
        transform (callable, optional): Applied to every item on access.
            (default: :obj:`None`)
        pre_transform (callable, optional): Applied to every item before
            caching. (default: :obj:`None`)
        pre_filter (callable, optional): Keeps the items for which it
            returns :obj:`True`, before caching. (default: :obj:`None`)
        force_reload (bool, optional): Regenerate even if cached.
            (default: :obj:`False`)
        log (bool, optional): Print while generating. (default: :obj:`True`)

    Raises:
        ValueError: If :obj:`split`, :obj:`variant` or :obj:`features` is
            unknown, or :obj:`num_samples` is not a positive int.
    """
    splits = ('train', 'test')
    variants = (None, 'T2', 'SE2')
    feature_types = (None, 'distances')
    default_num_samples = {'train': 10_000, 'test': 1_000}
    shapes = CONSTELLATION_SHAPES
    max_points = 34  #: Points of a constellation with all patterns kept.
    num_distance_features = 33

    def __init__(self, root: str, split: str = 'train',
                 variant: Optional[str] = None,
                 num_samples: Optional[int] = None, seed: int = 0,
                 features: Optional[str] = None,
                 transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None,
                 pre_filter: Optional[Callable] = None,
                 force_reload: bool = False, log: bool = True):
        check_choice('split', split, self.splits)
        check_choice('variant', variant, self.variants)
        check_choice('features', features, self.feature_types)
        if num_samples is None:
            num_samples = self.default_num_samples[split]
        num_samples = check_int('num_samples', num_samples)
        seed = check_int('seed', seed, None)
        self.split = split
        self.variant = variant
        self.num_samples = num_samples
        self.seed = seed
        self.features = features
        super().__init__(root, transform, pre_transform, pre_filter,
                         log=log, force_reload=force_reload)
        self.load(self.processed_paths[0])

    @property
    def raw_file_names(self):
        return []

    @property
    def processed_file_names(self) -> str:
        name = [self.split, self.variant or 'base', str(self.num_samples),
                f'seed{self.seed}', self.features or 'ones',
                f'v{_FORMAT_VERSION}']
        return '_'.join(name) + '.pt'

    def generate(self) -> ConstellationBatch:
        r"""Generates the split as dense tensors (positions in float64,
        features :obj:`x` as configured), without caching, transforms or
        filters."""
        parts = []
        for c in range(math.ceil(self.num_samples / _PER_CHUNK)):
            gen = torch.Generator().manual_seed(_derived_seed(
                _FORMAT_VERSION, self.seed, self.split, c))
            # Always a full chunk: data do not depend on num_samples.
            batch = generate_constellations(_PER_CHUNK, gen)
            pos = batch.pos
            if self.variant is not None:
                gen = torch.Generator().manual_seed(_derived_seed(
                    _FORMAT_VERSION, self.seed, self.split, self.variant, c))
                pos = _move(pos, batch.mask, self.variant, gen)
            if self.features == 'distances':
                x = constellation_distance_features(
                    pos, batch.mask, self.num_distance_features)
            else:
                x = batch.mask[..., None].to(torch.float64)
            parts.append(batch._replace(pos=pos, x=x))
        size = self.num_samples
        return ConstellationBatch(*(
            torch.cat([getattr(p, field) for p in parts])[:size]
            for field in ConstellationBatch._fields))

    def process(self):
        batch = self.generate()
        mask = batch.mask
        count = mask.sum(1)
        ptr = torch.cat([count.new_zeros(1), count.cumsum(0)])
        data = Data(x=batch.x[mask].float(), pos=batch.pos[mask].float(),
                    pattern=batch.pattern[mask], y=batch.y)
        slices = {'x': ptr, 'pos': ptr, 'pattern': ptr,
                  'y': torch.arange(count.numel() + 1)}
        if self.pre_filter is not None or self.pre_transform is not None:
            self._data, self.slices = data, slices
            data_list = [self.get(i) for i in range(count.numel())]
            self._data_list = None
            if self.pre_filter is not None:
                data_list = [d for d in data_list if self.pre_filter(d)]
            if self.pre_transform is not None:
                data_list = [self.pre_transform(d) for d in data_list]
            data, slices = self.collate(data_list)
        atomic_save((data.to_dict(), slices, data.__class__),
                           self.processed_paths[0])

    @property
    def num_points(self) -> Tensor:
        r"""The number of points of every constellation (of this data set or
        index subset), read from the slices without loading the items."""
        count = self.slices['pos'].diff()
        if self._indices is not None:
            count = count[torch.as_tensor(self.indices(), dtype=torch.long)]
        return count

    def score(self, pred: Tensor) -> Dict[str, Any]:
        r"""The accuracy of the predicted counts :obj:`pred [B, 4]` (mean
        over the shapes), the fraction of constellations with every count
        right (:obj:`exact_match`) and the accuracy per shape."""
        y = self.y
        if pred.shape != y.shape:
            raise ValueError(f"'pred' must have shape {list(y.shape)} (got "
                             f"{list(pred.shape)})")
        correct = (pred == y).float()
        return {'accuracy': float(correct.mean()),
                'exact_match': float(correct.all(1).float().mean()),
                'accuracy_per_shape': dict(zip(CONSTELLATION_SHAPES,
                                               correct.mean(0).tolist()))}

    def to_dense(self) -> ConstellationBatch:
        r"""The items (of this data set or index subset, without
        :obj:`transform`) as a dense :class:`ConstellationBatch` padded to
        :obj:`max_points` points, for models outside PyG (e.g. a plain
        transformer baseline) and plots."""
        from torch_geometric.utils import to_dense_batch

        data, slices = self._data, self.slices
        count = slices['pos'].diff()
        batch = torch.arange(count.numel()).repeat_interleave(count)
        N = max(self.max_points, int(count.max()))
        pos, mask = to_dense_batch(data.pos, batch, max_num_nodes=N)
        x, _ = to_dense_batch(data.x, batch, max_num_nodes=N)
        pattern, _ = to_dense_batch(data.pattern, batch, fill_value=-1,
                                    max_num_nodes=N)
        y = data.y.view(count.numel(), -1)
        out = ConstellationBatch(pos, x, mask, pattern, y)
        if self._indices is not None:
            index = torch.as_tensor(self.indices(), dtype=torch.long)
            out = ConstellationBatch(*(t[index] for t in out))
        return out

    def __repr__(self) -> str:
        extra = [f'split={self.split!r}']
        if self.variant is not None:
            extra.append(f'variant={self.variant!r}')
        if self.features is not None:
            extra.append(f'features={self.features!r}')
        return f"{self.__class__.__name__}({len(self)}, {', '.join(extra)})"
