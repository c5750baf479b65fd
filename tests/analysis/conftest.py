import pytest

from tests.analysis.tiny import Study, study


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return study(tmp_path_factory.getbasetemp())
