r"""Shared helpers of the group tests (imported by the test modules)."""
import math

import torch
from ase.build import molecule

from torch_lie.groups import SE2, SE3, SO2, SO3, RigidMotionGroup, T

GROUPS = [
    T(2),
    T(3),
    SO2(),
    SE2(),
    SE2(num_rotations=4),
    SO3(),
    SE3(),
    SO3(embedding='matrix'),
    SE3(embedding='matrix'),
    SE2(embedding='matrix'),
    SE2(num_rotations=4, embedding='canonical'),
    SE3(embedding='quaternion'),
]
RIGID_GROUPS = [G for G in GROUPS if isinstance(G, RigidMotionGroup)]
SO3_LIKE = [G for G in GROUPS if isinstance(G, (SO3, SE3))]
DTYPES = [torch.float32, torch.float64]
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

# A fixed, generic unit axis and translation used to build Lie algebra
# elements with a prescribed rotation angle.
AXIS = (0.36, -0.48, 0.8)  # unit length
TRANS = (0.4, 1.0, -0.7)


def tol(dtype: torch.dtype) -> float:
    return 1e-12 if dtype == torch.float64 else 1e-5


def assert_close(actual, expected, dtype=None, scale=1.0):
    t = tol(dtype or actual.dtype) * scale
    torch.testing.assert_close(actual, expected, atol=t, rtol=t)


def generator(device, seed=0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def ids(x) -> str:
    return str(x).replace('torch.', '')


def molecule_pos(name, dim, dtype=torch.float64, device='cpu'):
    r"""Positions of an ASE molecule (Angstrom), cut to :obj:`dim` coordinates
    (benzene lies in the xy plane, so its 2D cut is the full geometry)."""
    pos = torch.as_tensor(molecule(name).positions)[:, :dim]
    return pos.to(dtype=dtype, device=device)


def space_pos(G, dtype=torch.float64, device='cpu'):
    r"""Real atomic positions in the space the group acts on: benzene for
    2D groups, ethanol for 3D ones."""
    name = 'C6H6' if G.space_dim == 2 else 'CH3CH2OH'
    return molecule_pos(name, G.space_dim, dtype, device)


def algebra(G, theta, dtype=torch.float64, device='cpu'):
    r"""Lie algebra coordinates with rotation angle :obj:`theta` about a fixed
    axis (in the plane: the signed angle) and a fixed translation part."""
    a = torch.zeros(G.lie_dim, dtype=torch.float64)
    r = G.rotation_dim
    if r == 1:
        a[0] = theta
    elif r == 3:
        a[:3] = theta * torch.tensor(AXIS, dtype=torch.float64)
    a[r:] = torch.tensor(TRANS, dtype=torch.float64)[:G.lie_dim - r]
    return a.to(dtype=dtype, device=device)


def check_elements(G, g, dtype=None):
    r"""Asserts that :obj:`g` holds valid elements of :obj:`G`."""
    dtype = dtype or g.dtype
    if not isinstance(G, RigidMotionGroup):
        assert g.shape[-1] == G.space_dim
        assert torch.isfinite(g).all()
        return
    n = G.space_dim
    size = n + 1 if G.has_translation else n
    assert g.shape[-2:] == (size, size)
    R = G.rotation(g)
    eye = torch.eye(n, dtype=g.dtype, device=g.device).expand_as(R)
    assert_close(R @ R.transpose(-1, -2), eye, dtype, scale=10)
    det = torch.linalg.det(R.double().cpu())
    assert_close(det, torch.ones_like(det), dtype, scale=10)
    if G.has_translation:
        last = torch.zeros(n + 1, dtype=g.dtype, device=g.device)
        last[-1] = 1
        assert torch.equal(g[..., -1, :], last.expand_as(g[..., -1, :]))


def ks_statistic(samples, cdf) -> float:
    r"""One-sample Kolmogorov-Smirnov statistic of :obj:`samples` against the
    distribution function :obj:`cdf`."""
    x = samples.double().sort().values.cpu()
    n = x.numel()
    F = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - F).max().item(), (F - (i - 1) / n).max().item())


def ks_bound(n: int) -> float:
    r"""KS critical value at level ~0.1% (1.95 / sqrt(n))."""
    return 1.95 / math.sqrt(n)


def rotation_angle(R):
    r"""Rotation angles in :math:`[0, \pi]` of 3x3 rotation matrices."""
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.acos(cos)
