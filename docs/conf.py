r"""Sphinx configuration of the torch_lie documentation (``make docs``)."""
import os
import sys

sys.path.insert(0, os.path.abspath('..'))
import torch_lie  # noqa: E402

project = 'torch_lie'
author = 'torch_lie developers'
copyright = '2026, torch_lie developers'
version = release = torch_lie.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
]
autosummary_generate = True
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = 'alabaster'
html_static_path = []
exclude_patterns = ['_build']

# Broken cross-references inside torch_lie fail the build (-W); references
# to other projects are not resolved (no network at build time).
nitpicky = True
nitpick_ignore_regex = [
    ('py:obj', r'(?s).*'),  # :obj: marks literals and arguments (PyG style)
    # Inherited from PyG's MessagePassing and torch.nn.Module.
    ('py:.*', r'(Module|propagate|edge_updater|load_state_dict)'),
    ('py:.*', r'(torchdiffeq|torch_cluster|torch_scatter)\..*'),
    ('py:class', r'(sequence|iterable|os\.PathLike)'),
    ('py:mod', r'random'),
    ('py:class', r'LieTransformer'),  # the return annotation of .paper
    ('py:.*', r'pandas(\.| ).*'),
    ('py:.*', r'(torch|torch_geometric|ase|typing|collections|builtins|argparse)'
     r'(\..*)?'),
    ('py:.*', r'(Tensor|Data|Batch|Optional|Union|Callable|Any|Sequence|'
     r'Iterator|Mapping|Dict|List|Tuple|int|float|str|bool|dict|list|'
     r'tuple|callable|optional|None|NamedTuple|object)'),
]
