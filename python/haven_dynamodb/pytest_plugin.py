"""pytest fixtures for Haven (registered by the wheel's ``pytest11`` entry point).

- ``haven_server``: one in-memory Haven for the whole test session;
- ``dynamodb``: a boto3 client of it;
- ``haven_server_per_test`` and ``dynamodb_per_test``: a fresh Haven (no tables) for one test.
"""

import pytest

from haven_dynamodb import HavenServer


@pytest.fixture(scope="session")
def haven_server():
    with HavenServer() as server:
        yield server


@pytest.fixture(scope="session")
def dynamodb(haven_server):
    return haven_server.client()


@pytest.fixture
def haven_server_per_test():
    with HavenServer() as server:
        yield server


@pytest.fixture
def dynamodb_per_test(haven_server_per_test):
    return haven_server_per_test.client()
