import pytest

from tokenforge.net import ssrf


@pytest.fixture(autouse=True)
def forget_link_hosts():
    """Each test resolves link hosts through its own resolver."""
    ssrf.LINK_HOSTS.clear()
    yield
    ssrf.LINK_HOSTS.clear()
