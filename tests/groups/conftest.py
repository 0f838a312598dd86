import pytest
from _groups_util import DEVICES, DTYPES, GROUPS, ids


@pytest.fixture(params=GROUPS, ids=ids)
def group(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=ids)
def dtype(request):
    return request.param


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
