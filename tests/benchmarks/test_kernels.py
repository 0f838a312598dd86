r"""The benchmarks that compare the model's kernels time the same maths."""
import argparse
import dataclasses

import torch

from benchmarks import layer, models, springs_step
from torch_lie.nn import LieSelfAttentionConv, LieTransformer
from torch_lie.transforms import Lift

CPU = torch.device('cpu')


def test_layer_kernels_agree_on_complete_graphs():
    torch.manual_seed(0)
    full = layer.full_case(8, 256, 16, 6, CPU)  # 4 graphs of 8 elements
    assert full.num_pairs == full.num_edges == 256
    layers = {'sparse': LieSelfAttentionConv(16, 16, 6, heads=2)}
    layer.check_agreement(full, layers)
    assert full.runner('dense', layers)().shape == (32, 16)

    # The dense kernel runs on the complete graph of a radius graph's cloud.
    cloud = layer.radius_case(40, 16.0, 16, CPU)
    edge_index, edge_attr, size = cloud.complete_inputs()
    assert size == 40 and edge_index.size(1) == cloud.num_pairs == 1600
    layer.check_agreement(cloud, {'sparse': LieSelfAttentionConv(16, 16, 3,
                                                                 heads=2)})


def test_model_variants_share_parameters_and_kernels_agree():
    cfg = dataclasses.replace(models.CONFIGS['qm9-paper'], hidden=8,
                              layers=1, heads=2, batch_size=3)
    data, y = models.qm9_inputs(cfg.batch_size)
    torch.manual_seed(0)
    model = LieTransformer(data.x.size(1), 8, 1, num_layers=1, heads=2,
                           lift=Lift(cfg.group, cfg.num_samples))
    lifted = model.lift(data)
    sparse = models.variant_of(model, kernel='sparse')(lifted)
    dense = models.variant_of(model, kernel='dense')(lifted)
    assert torch.allclose(sparse, dense, atol=1e-5)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for variant in ('sparse', 'sparse-25nn', 'dense'):
        before = model.embedding.weight.detach().clone()
        models.training_step(cfg, variant, model, optimizer, data, y)()
        assert not torch.equal(model.embedding.weight, before), variant
    assert model.kernel == 'auto' and model.lift.max_num_neighbors is None


def test_springs_step_kernels_compute_the_same_dynamics():
    args = argparse.Namespace(layers=1, batch_size=3)
    z = torch.randn(3, 2, 6, 2)
    sys_params = torch.rand(3, 6, 2) + 0.1
    fields = [springs_step.build(variant, args, CPU)[0](z, sys_params)
              for variant in ('sparse', 'dense')]
    assert torch.allclose(*fields, atol=1e-5)
