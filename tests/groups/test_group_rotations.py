r"""Rotation helpers (``rotations.py``) and Haar sampling of every group."""
import math

import pytest
import torch
from _groups_util import (
    assert_close,
    check_elements,
    generator,
    ids,
    ks_bound,
    ks_statistic,
    rotation_angle,
)
from scipy.spatial.transform import Rotation

from torch_lie.groups import SE2, SE3, SO2, SO3
from torch_lie.groups.rotations import (
    hat,
    quaternion_to_matrix,
    random_so2_angle,
    random_so3,
    random_so3_to,
    so2_angle,
    so2_matrix,
    so3_exp,
    vee,
)

N = 10000  # samples of the statistical tests (seeded: deterministic)


def haar_so3_cdf(theta):
    r"""Distribution function of the rotation angle of a Haar rotation, whose
    density is (1 - cos theta) / pi on [0, pi]."""
    return (theta - torch.sin(theta)) / math.pi


def assert_haar_so3(R, n=N):
    r"""Moments and angle law of Haar-random 3x3 rotations :obj:`R [n,3,3]`.
    """
    R = R.double().cpu()
    se = 1 / math.sqrt(n)
    # E[R] = 0, each entry with variance 1/3.
    assert R.mean(0).abs().max() < 5 * se * math.sqrt(1 / 3)
    # E[R_ij R_kl] = delta_ik delta_jl / 3 (second moments; an
    # axis-biased sampler with the right angle law fails this).
    M = torch.einsum('nij,nkl->ikjl', R, R) / n
    ref = torch.einsum('ik,jl->ikjl', torch.eye(3), torch.eye(3)).double() / 3
    assert (M - ref).abs().max() < 5 * se
    # Angle law: E[cos theta] = int cos (1 - cos) / pi = -1/2 (sd 1/2),
    # E[theta] = pi/2 + 2/pi (sd ~0.63), and a KS test of the distribution.
    theta = rotation_angle(R)
    assert abs(torch.cos(theta).mean().item() + 0.5) < 5 * 0.5 * se
    assert abs(theta.mean().item() - (math.pi / 2 + 2 / math.pi)) < 5 * se
    assert ks_statistic(theta, haar_so3_cdf) < ks_bound(n)


def test_so2_matrix_and_angle(dtype):
    theta = torch.linspace(-math.pi, math.pi, 101, dtype=torch.float64)[1:-1]
    R = so2_matrix(theta.to(dtype))
    assert_close(R[..., 0, 0], torch.cos(theta).to(dtype))
    assert_close(R[..., 1, 0], torch.sin(theta).to(dtype))
    assert_close(so2_angle(R), theta.to(dtype), scale=10)
    # Angles in (-pi, pi]: 3 pi / 2 reads as -pi / 2, pi as pi.
    assert_close(so2_angle(so2_matrix(torch.tensor(1.5 * math.pi,
                                                   dtype=dtype))),
                 torch.tensor(-math.pi / 2, dtype=dtype), scale=10)
    R_pi = so2_matrix(torch.tensor(math.pi, dtype=torch.float64)).to(dtype)
    assert so2_angle(R_pi).item() == pytest.approx(math.pi, rel=1e-7)
    # (float32(pi) = 3.14159274 > pi: its own matrix reads as -pi.)
    if dtype == torch.float32:
        pi32 = so2_angle(so2_matrix(torch.tensor(math.pi, dtype=dtype)))
        assert pi32.item() == pytest.approx(-math.pi, rel=1e-7)


def test_hat_vee(dtype):
    g = generator('cpu')
    w = torch.randn(10, 3, generator=g, dtype=dtype)
    v = torch.randn(10, 3, generator=g, dtype=dtype)
    W = hat(w)
    assert torch.equal(W, -W.transpose(-1, -2))
    assert_close((W @ v[..., None])[..., 0], torch.linalg.cross(w, v),
                 scale=10)
    assert torch.equal(vee(W), w)
    # vee reads only the antisymmetric part.
    S = torch.randn(10, 3, 3, generator=g, dtype=dtype)
    assert_close(vee(W + S + S.transpose(-1, -2)), w, scale=10)


def test_quaternion_to_matrix_matches_scipy():
    q = torch.randn(100, 4, generator=generator('cpu'), dtype=torch.float64)
    R = quaternion_to_matrix(q)
    # SciPy orders quaternions (x, y, z, w); ours are (w, x, y, z).
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()
    assert_close(R, torch.as_tensor(ref), scale=10)
    # Not-normalised and sign-flipped quaternions give the same rotation.
    assert_close(quaternion_to_matrix(-3.5 * q), R, scale=10)
    assert_close(quaternion_to_matrix(torch.tensor([1.0, 0, 0, 0])),
                 torch.eye(3))


def test_so3_exp_rodrigues_known():
    # Rotation by 2 pi / 3 about (1, 1, 1) / sqrt 3 permutes the axes.
    w = torch.full((3, ), 2 * math.pi / 3 / math.sqrt(3), dtype=torch.float64)
    P = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    assert_close(so3_exp(w), P, scale=10)


def test_random_so3_is_haar():
    R = random_so3(N, generator('cpu'), torch.float64)
    check_elements(SO3(), R)
    assert_haar_so3(R)


def test_haar_check_has_power():
    # Negative control: uniform angle in [0, pi] and uniform axis (not Haar:
    # E[cos theta] = 0) must be rejected by the same check.
    g = generator('cpu')
    axis = torch.randn(N, 3, generator=g, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    theta = torch.rand(N, 1, generator=g, dtype=torch.float64) * math.pi
    R = so3_exp(axis * theta)
    check_elements(SO3(), R)
    with pytest.raises(AssertionError):
        assert_haar_so3(R)
    theta = rotation_angle(R)
    assert ks_statistic(theta, haar_so3_cdf) > 10 * ks_bound(N)


@pytest.mark.parametrize('G', [SO3(), SE3(), SO3(embedding='matrix')],
                         ids=ids)
def test_sample_so3_like_is_haar(G, dtype, device):
    g = G.sample(N, generator=generator(device, 3), dtype=dtype,
                 device=device)
    check_elements(G, g)
    assert_haar_so3(G.rotation(g))
    if G.has_translation:
        t = G.translation(g).double()
        se = 1 / math.sqrt(N)
        assert t.mean(0).abs().max() < 5 * se
        assert (t.var(0) - 1).abs().max() < 5 * math.sqrt(2) * se


@pytest.mark.parametrize('G', [SO2(), SE2()], ids=ids)
def test_sample_so2_like_uniform(G, dtype, device):
    g = G.sample(N, generator=generator(device, 4), dtype=dtype,
                 device=device)
    check_elements(G, g)
    theta = so2_angle(G.rotation(g)).double().cpu()
    se = 1 / math.sqrt(N)
    # Uniform on (-pi, pi]: E cos = E sin = E cos 2 theta = 0, E theta = 0,
    # E theta^2 = pi^2 / 3, and KS.
    for m in (torch.cos(theta), torch.sin(theta), torch.cos(2 * theta)):
        assert abs(m.mean().item()) < 5 * se
    assert abs(theta.mean().item()) < 5 * se * math.pi / math.sqrt(3)
    assert abs((theta**2).mean().item() - math.pi**2 / 3) < 5 * se * 3
    assert ks_statistic(theta, lambda x: (x + math.pi) / (2 * math.pi)) \
        < ks_bound(N)


def test_random_so2_angle_range(dtype):
    theta = random_so2_angle(N, generator('cpu'), dtype)
    assert theta.dtype == dtype
    assert theta.min() >= -math.pi and theta.max() < math.pi
    assert theta.min() < -math.pi + 0.01 and theta.max() > math.pi - 0.01


@pytest.mark.parametrize('k', [4, 3])
def test_sample_cyclic_subgroup(dtype, device, k):
    G = SE2(num_rotations=k)
    g = G.sample(4000, generator=generator(device, 5), dtype=dtype,
                 device=device)
    check_elements(G, g)
    theta = so2_angle(G.rotation(g)).double().cpu()
    m = theta / (2 * math.pi / k)
    # Only multiples of 2 pi / k, to the precision of the dtype.
    assert (m - m.round()).abs().max() < 10 * torch.finfo(dtype).eps
    counts = torch.bincount(m.round().long() % k, minlength=k).double()
    assert counts.numel() == k
    # Each of the k rotations with frequency 1/k (binomial sd).
    sd = math.sqrt(4000 * (1 / k) * (1 - 1 / k))
    assert ((counts - 4000 / k).abs() < 5 * sd).all()
    t = G.translation(g).double()
    assert t.mean(0).abs().max() < 5 / math.sqrt(4000)


def test_sample_reproducible(group, device):
    for dtype in (torch.float32, torch.float64):
        a, b, c = (group.sample(50, generator=generator(device, seed),
                                dtype=dtype, device=device)
                   for seed in (7, 7, 8))
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)


def test_random_so3_to(dtype):
    g = generator('cpu')
    d = torch.randn(500, 3, generator=g, dtype=dtype)
    d = d / d.norm(dim=-1, keepdim=True)
    R = random_so3_to(d, g)
    check_elements(SO3(), R)
    assert_close(R[..., 0], d)
    # The direction e1 itself: R e1 = e1, R a rotation about e1.
    e1 = torch.tensor([[1.0, 0.0, 0.0]], dtype=dtype).expand(500, 3)
    R = random_so3_to(e1, g)
    assert_close(R[..., 0], e1)
    assert_close(R[:, 0, 1:], torch.zeros(500, 2, dtype=dtype))
