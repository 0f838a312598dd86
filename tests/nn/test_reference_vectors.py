r"""torch_lie's paper presets compute the original implementation's
functions: its weights mapped onto torch_lie's parameters, its saved float64
outputs, intermediates and gradients reproduced."""
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from torch_lie.data import LiftedData
from torch_lie.groups.rotations import quaternion_to_matrix
from torch_lie.nn import LieTransformer
from torch_lie.nn.models import HamiltonianDynamics, LiePotential, SeparableHamiltonian
from torch_lie.transforms import Lift
from torch_lie.transforms.lift import complete_graph

DATA = Path(__file__).resolve().parents[1] / 'data' / 'reference_vectors'
SMALL = dict(hidden_channels=32, num_layers=2, heads=4)


def load(name):
    return torch.load(DATA / f'{name}.pt', weights_only=True)


def parameter_map(model, prefix, num_layers, heads, sign=-1.0):
    r"""Pairs (torch_lie parameter, function of the original's state dict)
    for every parameter. The original's T(2) and SE(3) pairs are
    log(v^-1 u) = -log(u^-1 v): the first location layer's weights change
    sign (:obj:`sign`; its SE2_canonical pairs are of u^-1 v)."""
    out = {'embedding.weight': f'{prefix}.net.0.module.weight',
           'embedding.bias': f'{prefix}.net.0.module.bias'}
    for layer in range(num_layers):
        ours, theirs = f'blocks.{layer}.', f'{prefix}.net.{layer + 1}.'
        loc = theirs + 'ema.kernel.location_kernel.LinNormAct_{}.linear.module.'
        names = {
            'norm_attn': 'ln_ema', 'norm_mlp': 'ln_mlp',
            'attn.lin_query': 'ema.kernel.feature_kernel.fc_q',
            'attn.lin_key': 'ema.kernel.feature_kernel.fc_k',
            'attn.lin_value': 'ema.input_linear',
            'attn.lin_out': 'ema.output_linear',
            'mlp.0': 'mlp.LinNormAct_1.linear.module',
            'mlp.3': 'mlp.LinNormAct_2.linear.module',
        }
        for a, b in names.items():
            for kind in ('weight', 'bias'):
                out[f'{ours}{a}.{kind}'] = f'{theirs}{b}.{kind}'
        out[ours + 'attn.kernel_in.weight'] = (
            loc.format(1) + 'weight',
            lambda w: sign * w.transpose(1, 2).reshape(-1, w.size(1)))
        out[ours + 'attn.kernel_in.bias'] = (loc.format(1) + 'bias',
                                             lambda b: b.reshape(-1))
        out[ours + 'attn.kernel_hidden'] = loc.format(2) + 'weight'
        out[ours + 'attn.kernel_hidden_bias'] = (loc.format(2) + 'bias',
                                                 lambda b: b[:, None])
        out[ours + 'attn.kernel_out'] = loc.format(3) + 'weight'
        out[ours + 'attn.kernel_out_bias'] = (loc.format(3) + 'bias',
                                              lambda b: b[:, None])
    for ours, theirs in (('head.1', 2), ('head.3', 5), ('head.5', 8)):
        for kind in ('weight', 'bias'):
            out[f'{ours}.{kind}'] = f'{prefix}.net.{num_layers + 2}.{theirs}.{kind}'
    return {k: v if isinstance(v, tuple) else (v, lambda t: t)
            for k, v in out.items()}


def load_original(model, ref, prefix, every_parameter=True, sign=-1.0):
    r"""Copies the original's weights into :obj:`model` and returns the
    map, to carry gradients over the same way."""
    mapping = parameter_map(model, prefix, SMALL['num_layers'], SMALL['heads'],
                            sign)
    params = dict(model.named_parameters())
    if every_parameter:
        assert set(mapping) == set(params)
    with torch.no_grad():
        for name, (theirs, fn) in mapping.items():
            params[name].copy_(fn(ref['state_dict'][theirs]))
    return mapping


def close(actual, expected):
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize('name', ['springs_t2', 'springs_t2_norm_exp'])
def test_springs_potential_field_rollout_and_gradients(name):
    ref = load(name)
    attention = ref['architecture']['attention_fn_effective']
    potential = LiePotential.paper(attention=attention, **SMALL).double()
    mapping = load_original(potential.transformer, ref, 'predictor')
    inputs, outputs = ref['inputs'], ref['outputs']
    B = inputs['z0'].size(0)
    q0 = inputs['q0'].clone().requires_grad_()
    sys_params = inputs['sys_params']

    V = potential(q0, sys_params)
    close(V, outputs['V'])
    close(torch.autograd.grad(V.sum(), q0)[0], outputs['dV_dq'])

    dynamics = HamiltonianDynamics(SeparableHamiltonian(potential))
    z0 = inputs['z0'].view(B, 2, 6, 2)
    close(dynamics.hamiltonian(z0, sys_params), outputs['H'])
    close(dynamics(z0, sys_params).reshape(B, 24), outputs['vector_field'])
    rollout = dynamics.rollout(z0, inputs['ts'][0], sys_params).reshape(B, 5, 24)
    close(rollout, outputs['rollout'])
    loss = ((rollout - inputs['true_zs']) ** 2).mean()
    close(loss, outputs['loss'])

    loss.backward()
    params = dict(potential.transformer.named_parameters())
    scale = max(g.abs().max() for g in ref['gradients'].values())
    for name, (theirs, fn) in mapping.items():
        grad = params[name].grad  # None where V does not depend on it
        if theirs in ref['params_without_grad']:
            assert grad is None or not grad.any()
            continue
        torch.testing.assert_close(grad / scale,
                                   fn(ref['gradients'][theirs]) / scale,
                                   rtol=0, atol=1e-9)


def constellations(ref):
    r"""The saved constellations' present corners as a PyG batch."""
    inputs, present = ref['inputs'], ref['inputs']['presence']
    return Batch.from_data_list([
        Data(pos=inputs['X'][b][present[b]], x=inputs['features'][b][present[b]])
        for b in range(present.size(0))])


@pytest.mark.parametrize('kernel', ['dense', 'sparse'])
@pytest.mark.parametrize('name,group,sign', [
    ('constellation_t2', 'T2', -1.0),
    ('constellation_se2c2', 'SE2-C2-canonical', 1.0)])
def test_constellation_logits(kernel, name, group, sign):
    ref = load(name)
    model = LieTransformer.paper('constellation', lift=Lift(group),
                                 kernel=kernel, **SMALL).double()
    load_original(model, ref, 'encoder', sign=sign)
    batch = constellations(ref)
    logits = model(batch).view(-1, 4, 3)
    close(logits, ref['outputs']['logits'])
    target = ref['inputs']['target'].reshape(-1).long()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), target)
    close(loss, ref['outputs']['loss'])


def qm9_lifted(ref, model, pairs):
    r"""The saved molecules as lifted data with the given pair embeddings
    :obj:`[B, M, M, 6]` (target, source) of their valid atoms."""
    mask = ref['lift']['lifted_mask']
    sizes = mask.sum(1)
    batch = torch.arange(len(sizes)).repeat_interleave(sizes)
    edge_index = complete_graph(int(sizes.sum()), batch)
    edge_attr = torch.cat([pairs[b][mask[b]][:, mask[b]].reshape(-1, 6)
                           for b in range(len(sizes))])
    g = ref['lift']['lifted_matrices'][mask]
    lifted = LiftedData(x=ref['lift']['lifted_features'][mask], g=g,
                        q=g.new_zeros(g.size(0), 0),
                        point_index=torch.arange(g.size(0)), batch=batch,
                        edge_index=edge_index, edge_attr=edge_attr,
                        lift=repr(model.lift))
    lifted._num_graphs = len(sizes)
    return lifted


@pytest.mark.parametrize('kernel', ['dense', 'sparse'])
def test_qm9_prediction_from_saved_and_own_pairs(kernel):
    ref = load('qm9_se3')
    model = LieTransformer.paper('qm9', kernel=kernel, **SMALL).double()
    load_original(model, ref, 'predictor')
    # The network on the original's pairs (negated: log(u^-1 v)).
    lifted = qm9_lifted(ref, model, -ref['lift']['pairs'])
    close(model(lifted).view(-1), ref['outputs']['prediction'])
    # torch_lie's own pair embedding of the saved elements: an accurate
    # log, within 1e-10 of the original's acos-based one.
    own = model.group.edge_attr(lifted.g, lifted.edge_index)
    torch.testing.assert_close(own, lifted.edge_attr, rtol=0, atol=1e-10)
    lifted.edge_attr = own
    torch.testing.assert_close(model(lifted).view(-1),
                               ref['outputs']['prediction'], rtol=0, atol=1e-12)


def test_paper_presets_full_size():
    r"""The full-size presets have the original's parameter counts."""
    assert sum(p.numel() for p in LiePotential.paper().parameters()) == 841_641
    for task, millions in (('constellation', 10.0), ('qm9', 10.0),
                           ('qm9_paper', 55.5)):
        count = sum(p.numel() for p in LieTransformer.paper(task).parameters())
        assert round(count / 1e6, 1) == millions
    with pytest.raises(ValueError, match="No paper model for 'qm10'"):
        LieTransformer.paper('qm10')


@pytest.mark.parametrize('change', [dict(kernel_act_out=False),
                                    dict(mlp_act_out=False),
                                    dict(final_norm=True)])
def test_without_the_paper_layout_the_outputs_differ(change):
    r"""Negative control: each part of the paper's layout matters."""
    ref = load('constellation_t2')
    model = LieTransformer.paper('constellation', **SMALL, **change).double()
    load_original(model, ref, 'encoder', every_parameter=False)
    batch = constellations(ref)
    logits = model(batch).view(-1, 4, 3)
    assert not torch.allclose(logits, ref['outputs']['logits'], atol=1e-6)



def qm9_paper_parameter_map(e=8):
    r"""The original QM9 paper model's parameters ('2232' kernel, 'lieconv'
    head) onto torch_lie's :obj:`combine="embedding"` and
    :obj:`head="pointwise"`."""
    out = {'embedding.weight': ('predictor.net.0.module.weight', None),
           'embedding.bias': ('predictor.net.0.module.bias', None),
           'head.1.weight': ('predictor.net.3.linear.module.weight', None),
           'head.1.bias': ('predictor.net.3.linear.module.bias', None)}
    for layer in range(SMALL['num_layers']):
        ours, theirs = f'blocks.{layer}.', f'predictor.net.{layer + 1}.'
        feat = theirs + 'ema.kernel.feature_featurisation.'
        mlp = theirs + ('ema.kernel.location_feature_combination.1.'
                        'LinNormAct_{}.linear.module.')
        names = {'norm_attn': theirs + 'ln_ema', 'norm_mlp': theirs + 'ln_mlp',
                 'attn.lin_query': feat + 'fc_k',  # on the query, see README
                 'attn.lin_key': feat + 'fc_q', 'attn.lin_content': feat + 'fc_o',
                 'attn.lin_value': theirs + 'ema.input_linear',
                 'attn.lin_out': theirs + 'ema.output_linear',
                 'mlp.0': theirs + 'mlp.LinNormAct_1.linear.module',
                 'mlp.3': theirs + 'mlp.LinNormAct_2.linear.module'}
        for a, b in names.items():
            for kind in ('weight', 'bias'):
                out[f'{ours}{a}.{kind}'] = (f'{b}.{kind}', None)
        # First logit layer: [content embedding (e), pair (7)] inputs.
        out[ours + 'attn.kernel_content'] = (mlp.format(1) + 'weight',
                                             lambda w: w[:, :e])
        out[ours + 'attn.kernel_in.weight'] = (
            mlp.format(1) + 'weight',
            lambda w: w[:, e:].transpose(1, 2).reshape(-1, w.size(1) - e))
        out[ours + 'attn.kernel_in.bias'] = (mlp.format(1) + 'bias',
                                             lambda b: b.reshape(-1))
        out[ours + 'attn.kernel_hidden'] = (mlp.format(2) + 'weight', None)
        out[ours + 'attn.kernel_hidden_bias'] = (mlp.format(2) + 'bias',
                                                 lambda b: b[:, None])
        out[ours + 'attn.kernel_out'] = (mlp.format(3) + 'weight', None)
        out[ours + 'attn.kernel_out_bias'] = (mlp.format(3) + 'bias',
                                              lambda b: b[:, None])
    return out


def test_qm9_paper_kernel_and_head_with_its_neighbourhoods():
    r"""The QM9 paper script's network (kernel '2232': a content embedding
    and the pair through per-head MLPs, dot-product normalisation; the
    per-element 'lieconv' head) on the original's saved lifts and its
    per-layer random neighbourhoods, run block by block."""
    ref = load('qm9_paper')
    model = LieTransformer.paper('qm9_paper', **SMALL).double()
    params = dict(model.named_parameters())
    mapping = qm9_paper_parameter_map()
    assert set(mapping) == set(params)
    with torch.no_grad():
        for name, (theirs, fn) in mapping.items():
            value = ref['state_dict'][theirs]
            params[name].copy_(value if fn is None else fn(value))

    lift, inter = ref['lift'], ref['intermediates']
    mask, pairs = lift['lifted_mask'], lift['pairs']
    B, M = mask.shape
    index = torch.full((B, M), -1, dtype=torch.long)
    index[mask] = torch.arange(int(mask.sum()))
    batch = torch.arange(B)[:, None].expand(B, M)[mask]
    x = model.embedding(lift['lifted_features'][mask])
    close(x, inter['embedding'][mask])
    for layer, block in enumerate(model.blocks):
        nbhd = inter['nbhd_idx'][layer]  # [B, M, 25] keys of each query
        b = torch.arange(B)[:, None, None].expand_as(nbhd)
        i = torch.arange(M)[None, :, None].expand_as(nbhd)
        keep = mask[b, i] & mask[b, nbhd]  # padded keys are masked out
        edge_index = torch.stack([index[b, nbhd][keep], index[b, i][keep]])
        x = block(x, edge_index, pairs[b, i, nbhd][keep])
        close(x, inter['block_outputs'][layer][mask])
    out = model._readout(x, lambda h: scatter(h, batch, dim=0, dim_size=B,
                                              reduce='mean'))
    close(out.view(-1), ref['outputs']['prediction'])

    # torch_lie's quaternion embedding of the saved elements: the
    # original's pairs are of v^-1 u (query u, key v), with the sign of
    # the quaternion left as the lifts' product made it.
    g = model.group.from_parts(
        quaternion_to_matrix(lift['lifted_rotation_quaternion']),
        lift['lifted_translation'])
    u, v = g[:, :, None], g[:, None, :]
    own = model.group.pair_embedding(v.expand(B, M, M, 4, 4),
                                     u.expand(B, M, M, 4, 4))
    sign = torch.where(pairs[..., :1] < 0, -1.0, 1.0).to(pairs)
    valid = mask[:, :, None] & mask[:, None, :]
    torch.testing.assert_close(own[valid], (pairs * torch.cat(
        [sign.expand(B, M, M, 4), torch.ones(B, M, M, 3, dtype=pairs.dtype)],
        -1))[valid], rtol=0, atol=1e-12)
