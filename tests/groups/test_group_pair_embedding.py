r"""Pair embeddings and the group distance: widths, left invariance for every
group (with the Trivial group as the negative control), exact invariance of
deterministic lifts, and the continuity of the 'matrix' embedding at angle
pi where 'log' jumps."""
import math

import pytest
import torch
from _groups_util import (
    GROUPS,
    RIGID_GROUPS,
    assert_close,
    generator,
    ids,
    molecule_pos,
    space_pos,
)

from torch_lie.groups import SE2, SE3, SO2, SO3, T, Trivial

EDGE_DIM = {
    'T(2)': 2,
    'T(3)': 3,
    'SO2()': 3,  # angle, q_u, q_v
    'SE2()': 3,
    'SE2(num_rotations=4)': 3,
    'SO3()': 5,  # axis-angle, q_u, q_v
    'SE3()': 6,
    "SO3(embedding='matrix')": 11,  # 9 entries, q_u, q_v
    "SE3(embedding='matrix')": 12,  # 9 + 3
    "SE2(embedding='matrix')": 6,  # 4 + 2
    'Trivial(2)': 4,
    'Trivial(3)': 6,
    "SE2(num_rotations=4, embedding='canonical')": 3,
    "SE3(embedding='quaternion')": 7,
}


def all_pairs(n, device='cpu'):
    i, j = torch.meshgrid(torch.arange(n, device=device),
                          torch.arange(n, device=device), indexing='ij')
    return i.flatten(), j.flatten()


def lifted_pairs(G, dtype, device='cpu', seed=0, S=3):
    r"""Lifted elements of a molecule and all their pairs (u, v, q_u, q_v).
    (An odd number of samples: see :func:`test_se2_even_samples_pi_pairs`.)
    """
    pos = space_pos(G, dtype, device)
    S = 1 if G.deterministic else S
    g, q = G.lift(pos, S, generator=generator(device, seed))
    i, j = all_pairs(g.size(0), device)
    return g[i], g[j], q[i], q[j]


@pytest.mark.parametrize('G', GROUPS + [Trivial(2), Trivial(3)], ids=ids)
def test_edge_dim(G, device):
    assert G.edge_dim == EDGE_DIM[repr(G)]
    for dtype in (torch.float32, torch.float64):
        u, v, q_u, q_v = lifted_pairs(G, dtype, device)
        e = G.pair_embedding(u, v, q_u, q_v)
        assert e.shape == (u.size(0), G.edge_dim)
        assert e.dtype == dtype and torch.isfinite(e).all()


def test_pair_embedding_left_invariant(group, dtype, device):
    u, v, q_u, q_v = lifted_pairs(group, dtype, device)
    e = group.pair_embedding(u, v, q_u, q_v)
    for seed in range(3):
        h = group.sample(1, generator=generator(device, 100 + seed),
                         dtype=dtype, device=device)
        e_h = group.pair_embedding(group.compose(h, u), group.compose(h, v),
                                   q_u, q_v)
        err = (e_h - e).abs().max().item()
        assert err < (1e-10 if dtype == torch.float64 else 1e-4), err


@pytest.mark.parametrize('n', [2, 3])
def test_trivial_not_invariant(n, dtype):
    # Negative control: absolute positions are not invariant.
    G = Trivial(n)
    u, v, q_u, q_v = lifted_pairs(G, dtype)
    e = G.pair_embedding(u, v, q_u, q_v)
    h = G.sample(1, generator=generator('cpu', 1), dtype=dtype)
    e_h = G.pair_embedding(G.compose(h, u), G.compose(h, v), q_u, q_v)
    assert (e_h - e).abs().max() > 0.1
    assert_close(e, torch.cat([u, v], dim=-1))
    # ... while T(n), with the same elements, is.
    e_T = T(n).pair_embedding(T(n).compose(h, u), T(n).compose(h, v))
    assert_close(e_T, v - u, scale=10)


@pytest.mark.parametrize('G', [T(2), T(3), SO2(), SE2(num_rotations=4),
                               SE2(num_rotations=4, embedding='canonical')],
                         ids=ids)
def test_deterministic_lift_exactly_invariant(G, dtype, device):
    # Transform the molecule, lift again: same pair embeddings (up to the
    # cyclic permutation of the C4 lift).
    pos = space_pos(G, dtype, device)
    if isinstance(G, T):
        h = torch.tensor([1.5, -0.5, 2.0][:G.space_dim], dtype=dtype,
                         device=device)
    elif isinstance(G, SO2):
        h = G.exp(torch.tensor([2.1], dtype=dtype, device=device))
    else:  # rotation by 90 degrees and a translation
        h = G.from_parts(
            torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=dtype,
                         device=device),
            torch.tensor([1.5, -0.5], dtype=dtype, device=device))
    g, q = G.lift(pos)
    g_h, q_h = G.lift(G.act(h, pos))
    if isinstance(G, SE2):
        # h g_{i,k} = g'_{i,k+1}: undo the roll before comparing.
        g_h = g_h.view(-1, 4, 3, 3).roll(-1, dims=1).reshape(g.shape)
    i, j = all_pairs(g.size(0), device)
    e = G.pair_embedding(g[i], g[j], q[i], q[j])
    e_h = G.pair_embedding(g_h[i], g_h[j], q_h[i], q_h[j])
    err = (e_h - e).abs().max().item()
    assert err < (1e-10 if dtype == torch.float64 else 1e-4), err


def test_pair_embedding_values(dtype):
    pos = molecule_pos('C6H6', 2, dtype)
    # T(2): x_v - x_u.
    G = T(2)
    g, _ = G.lift(pos)
    assert_close(G.pair_embedding(g[0], g[3]), pos[3] - pos[0])
    # SO(2): the angle from x_u to x_v and both radii. Atoms 0 and 1 of
    # benzene are 60 degrees apart, clockwise (from +y to 30 deg).
    G = SO2()
    g, q = G.lift(pos)
    e = G.pair_embedding(g[0], g[1], q[0], q[1])
    x = pos.double()
    phi = math.atan2(x[1, 1], x[1, 0]) - math.atan2(x[0, 1], x[0, 0])
    assert phi == pytest.approx(-math.pi / 3, abs=1e-6)
    ref = torch.tensor([phi, x[0].norm(), x[1].norm()], dtype=dtype)
    assert_close(e, ref, scale=10)
    # SE(3) 'matrix': [R_u^T R_v (row-major), R_u^T (t_v - t_u)].
    G = SE3(embedding='matrix')
    u, v = G.sample(2, generator=generator('cpu'), dtype=dtype)
    Ru, Rv, tu, tv = G.rotation(u), G.rotation(v), G.translation(u), \
        G.translation(v)
    ref = torch.cat([(Ru.T @ Rv).flatten(), Ru.T @ (tv - tu)])
    assert_close(G.pair_embedding(u, v), ref, scale=10)
    # A pair (u, u) embeds the identity: zero log, identity matrix.
    assert_close(SE3().pair_embedding(u, u), torch.zeros(6, dtype=dtype),
                 scale=10)
    assert_close(G.pair_embedding(u, u)[:9], torch.eye(3, dtype=dtype)
                 .flatten(), scale=10)


@pytest.mark.parametrize('G', [G for G in RIGID_GROUPS
                               if not getattr(G, 'num_rotations', None)],
                         ids=ids)
def test_embedding_at_angle_pi(G):
    # Crossing angle pi: exp((pi - d) n) and exp((pi + d) n) are 2d apart.
    # 'matrix' embeds them 2d apart; 'log' jumps by ~2 pi (the axis flips);
    # 'quaternion' by 2 (the sign that keeps w >= 0 flips).
    d = 1e-4
    a1 = torch.zeros(G.lie_dim, dtype=torch.float64)
    a2 = torch.zeros(G.lie_dim, dtype=torch.float64)
    axis = torch.tensor([0.36, -0.48, 0.8], dtype=torch.float64)
    if G.rotation_dim == 1:
        axis = axis[:1] / axis[:1].abs()
    a1[:G.rotation_dim] = (math.pi - d) * axis
    a2[:G.rotation_dim] = (math.pi + d) * axis
    a1[G.rotation_dim:] = a2[G.rotation_dim:] = 0.5
    g1, g2 = G.exp(a1), G.exp(a2)
    assert (g1 - g2).abs().max() < 4 * d
    e = G.identity(dtype=torch.float64)
    q = torch.ones(G.q_dim, dtype=torch.float64)
    jump = (G.pair_embedding(e, g1, q, q) -
            G.pair_embedding(e, g2, q, q)).norm().item()
    if G.embedding == 'matrix':
        assert jump < 4 * d
    elif G.embedding == 'quaternion':  # w >= 0: q flips to -q (|q| = 1)
        assert abs(jump - 2.0) < 1e-3
    else:
        assert jump > 6.0  # documented discontinuity of the log embedding


def test_distance(group, dtype, device):
    u, v, _, _ = lifted_pairs(group, dtype, device)
    d = group.distance(u, v)
    assert d.shape == (u.size(0), ) and (d >= 0).all()
    assert torch.isfinite(d).all()
    n = int(math.sqrt(u.size(0)))
    D = d.view(n, n)
    # Zero on the diagonal, symmetric, left-invariant.
    assert D.diagonal().abs().max() < (1e-6 if dtype == torch.float32
                                       else 1e-12)
    assert_close(D, D.T, scale=100)
    assert D.max() > 0.5
    h = group.sample(1, generator=generator(device, 9), dtype=dtype,
                     device=device)
    d_h = group.distance(group.compose(h, u), group.compose(h, v))
    assert_close(d_h, d, scale=100)


def test_distance_values(dtype):
    t = torch.tensor
    # T: Euclidean distance.
    assert_close(T(3).distance(t([0.0, 0, 0], dtype=dtype),
                               t([3.0, 4, 0], dtype=dtype)),
                 t(5.0, dtype=dtype))
    # SO(3): the rotation angle of u^-1 v.
    u = SO3().exp(t([0.0, 0, 0.3], dtype=dtype))
    v = SO3().exp(t([0.0, 0, -0.9], dtype=dtype))
    assert_close(SO3().distance(u, v), t(1.2, dtype=dtype), scale=10)
    # SE(3): alpha |omega| + (1 - alpha) |u|; pure translation / rotation.
    G = SE3()
    e = G.identity(dtype=dtype)
    g = G.exp(t([0.0, 0, 0, 3.0, 4.0, 0], dtype=dtype))
    assert_close(G.distance(e, g), t(0.8 * 5, dtype=dtype))
    assert_close(G.distance(e, g, alpha=0.5), t(2.5, dtype=dtype))
    g = G.exp(t([0.0, 2.0, 0, 0, 0, 0], dtype=dtype))
    assert_close(G.distance(e, g), t(0.2 * 2, dtype=dtype), scale=10)
    # SE(2) screw: log (1, 2, 0) -> 0.2 * 1 + 0.8 * 2.
    G = SE2()
    g = G.exp(t([1.0, 2.0, 0.0], dtype=dtype))
    assert_close(G.distance(G.identity(dtype=dtype), g),
                 t(0.2 + 1.6, dtype=dtype), scale=10)
    # SO(2): |angle| in [0, pi].
    assert_close(SO2().distance(SO2().exp(t([3.0], dtype=dtype)),
                                SO2().exp(t([-3.0], dtype=dtype))),
                 t(2 * math.pi - 6, dtype=dtype), scale=10)
    # The gradient of the distance at u = v is finite (safe_norm at 0).
    a = t([0.0, 0, 0, 0, 0, 0], dtype=dtype, requires_grad=True)
    (grad, ) = torch.autograd.grad(SE3().distance(e, SE3().exp(a)), a)
    assert torch.isfinite(grad).all()


def test_matrix_embedding_invariant_and_close_to_log():
    # The two embeddings of the same pair agree through exp: exp(log(.))
    # rebuilds the matrix entries from the log embedding.
    for G_log, G_mat in [(SO3(), SO3(embedding='matrix')),
                         (SE3(), SE3(embedding='matrix')),
                         (SE2(), SE2(embedding='matrix'))]:
        u, v, q_u, q_v = lifted_pairs(G_log, torch.float64)
        e_log = G_log.pair_embedding(u, v, q_u, q_v)
        e_mat = G_mat.pair_embedding(u, v, q_u, q_v)
        n = G_log.space_dim
        w = G_log.lie_dim
        g = G_log.exp(e_log[:, :w])
        assert_close(e_mat[:, :n * n], G_log.rotation(g).flatten(-2),
                     scale=1e3)
        if G_log.has_translation:
            assert_close(e_mat[:, n * n:], G_log.translation(g), scale=1e3)
        else:
            assert_close(e_mat[:, n * n:], e_log[:, w:])


def test_se2_cyclic_embedding_reads_pi_as_pi(dtype):
    # T(2) x C4 lifts: relative rotations are multiples of pi / 2, and pi
    # (reached with rounding noise of either sign) always embeds as +pi.
    G = SE2(num_rotations=4)
    u, v, q_u, q_v = lifted_pairs(G, dtype)
    theta = G.pair_embedding(u, v, q_u, q_v)[:, 0]
    grid = (torch.tensor([0.0, 0.5, 1.0, -0.5], dtype=torch.float64)
            * math.pi).to(dtype)
    tol = 10 * torch.finfo(dtype).eps
    assert ((theta[:, None] - grid).abs().amin(-1) < tol).all()
    assert ((theta - grid[2]).abs() < tol).sum() == u.size(0) // 4
    # The plain log sees the rounding noise: some pi pairs read as -pi.
    raw = G.log(G.compose(G.inv(u), v))[:, 0]
    assert (raw < -3.14).any()


def se2_even_lift_pairs(dtype):
    G = SE2()
    u, v, _, _ = lifted_pairs(G, dtype, S=2)
    rel = G.log(G.compose(G.inv(u), v))[:, 0]
    at_pi = (rel.abs() - math.pi).abs() < 1e-5
    hs = G.sample(5, generator=generator('cpu', 200), dtype=dtype)
    return u, v, at_pi, hs


def test_se2_even_samples_pi_pairs(dtype):
    # With an even number S of stratified samples, the samples s and s + S/2
    # of a point are exactly pi apart, on the discontinuity of the 'log'
    # embedding. The 'matrix' embedding is invariant there, and 'log'
    # elsewhere.
    G_log, G_mat = SE2(), SE2(embedding='matrix')
    u, v, at_pi, hs = se2_even_lift_pairs(dtype)
    assert at_pi.sum() == 2 * 12  # both orders of each benzene atom's pair
    for h in hs:
        hu, hv = G_log.compose(h, u), G_log.compose(h, v)
        assert_close(G_mat.pair_embedding(hu, hv), G_mat.pair_embedding(u, v),
                     scale=100)
        e_log = G_log.pair_embedding(hu, hv)
        assert_close(e_log[~at_pi], G_log.pair_embedding(u, v)[~at_pi],
                     scale=1e4)


def test_se2_even_samples_log_invariant_at_pi(dtype):
    G = SE2()
    u, v, at_pi, hs = se2_even_lift_pairs(dtype)
    e = G.pair_embedding(u, v)[at_pi]
    for h in hs:
        e_h = G.pair_embedding(G.compose(h, u), G.compose(h, v))[at_pi]
        assert (e_h - e).abs().max() < 1e-4


def test_pair_embedding_needs_q():
    for G in (SO2(), SO3(), SO3(embedding='matrix')):
        u, v, q_u, q_v = lifted_pairs(G, torch.float64)
        with pytest.raises(ValueError, match="'q_u' and 'q_v'"):
            G.pair_embedding(u, v)
        g, _ = G.lift(space_pos(G), generator=generator('cpu'))
        edge_index = torch.tensor([[0, 1], [1, 0]])
        with pytest.raises(ValueError, match="orbit invariants 'q'"):
            G.edge_attr(g, edge_index)


def test_edge_attr(group, dtype):
    # edge_index = [source v, target u]: e_uv = embed(u^-1 v), q_u, q_v.
    pos = space_pos(group, dtype)
    g, q = group.lift(pos, 1 if group.deterministic else 3,
                      generator=generator('cpu'))
    n = g.size(0)
    src = torch.arange(n).repeat(3)
    dst = torch.randint(n, (3 * n, ), generator=generator('cpu'))
    edge_index = torch.stack([src, dst])
    e = group.edge_attr(g, edge_index, q)
    assert e.shape == (3 * n, group.edge_dim)
    ref = group.pair_embedding(g[dst], g[src], q[dst], q[src])
    assert torch.equal(e, ref)
    if group.q_dim:
        assert torch.equal(e[:, -2:], torch.cat([q[dst], q[src]], -1))
    # Left invariant, like the pair embedding.
    h = group.sample(1, generator=generator('cpu', 5), dtype=dtype)
    e_h = group.edge_attr(group.compose(h, g), edge_index, q)
    assert (e_h - e).abs().max() < (1e-10 if dtype == torch.float64
                                    else 1e-4)
