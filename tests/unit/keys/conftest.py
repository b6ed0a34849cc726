"""A real KMS over HTTP: moto's server on 127.0.0.1 (one per test module)."""

from __future__ import annotations

import boto3
import pytest

REGION = "us-east-1"


@pytest.fixture(scope="module")
def kms_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def new_kms_key(kms_endpoint, aws_env):
    client = boto3.client("kms", region_name=REGION, endpoint_url=kms_endpoint)

    def create() -> str:
        return client.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]

    return create
