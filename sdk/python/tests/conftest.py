"""The suite runs against a running `distillery serve` whose store holds records: DISTILLERY_API_URL and
DISTILLERY_API_TOKEN say where (tests/sdk_python.rs in the Rust suite starts one and sets them)."""

import os

import pytest

from distillery_sdk import Client


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run against a `distillery serve` (see sdk/python/README.md)", pytrace=False)
    return value


@pytest.fixture(scope="session")
def url() -> str:
    return _env("DISTILLERY_API_URL")


@pytest.fixture(scope="session")
def token() -> str:
    return _env("DISTILLERY_API_TOKEN")


@pytest.fixture()
def client(url: str, token: str):
    with Client(url, token) as c:
        yield c
