from __future__ import annotations

import os
import socket

import pytest

CI = os.environ.get("CI", "").lower() == "true"


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent locally; under CI=true a missing service is a failure."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError:
        if CI:
            pytest.fail(f"{name} is not reachable at {host}:{port} (required under CI=true)")
        pytest.skip(f"{name} is not reachable at {host}:{port}")


@pytest.fixture
def settings(tmp_path):
    from tokenforge.config import Settings

    return Settings(data_dir=tmp_path / "data", confirm_poll_s=0.01, retry_base_s=0.01, retry_max_s=0.05,
                    relay_poll_s=0.05)
