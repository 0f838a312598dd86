import torch

from benchmarks import common

CPU = torch.device('cpu')


def test_interleaved_times_every_function_in_turn():
    calls = []
    times = common.interleaved({'a': lambda: calls.append('a'),
                                'b': lambda: calls.append('b')},
                               repeats=3, device=CPU, warmup=1)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3
    for entry in times.values():
        assert len(entry['times_s']) == 3
        assert entry['min_s'] <= entry['median_s'] <= entry['max_s']


def test_count_flops_of_matrix_products():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert common.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    assert common.count_flops(lambda: a + 1) == 0


def test_peak_memory_sees_a_temporary_allocation():
    base = common.peak_memory_gb(lambda: None, CPU)
    # 400 MB allocated and freed inside the call.
    peak = common.peak_memory_gb(lambda: torch.ones(100_000_000).sum(), CPU)
    assert peak - base > 0.35
    assert common.peak_memory_gb(lambda: None, CPU) - base < 0.05
