from tests.integration.conftest import kafka, pytest_runtest_makereport, worker_log  # noqa: F401 - shared fixtures
