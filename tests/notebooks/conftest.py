import pytest

from tests.analysis.tiny import Study, shared_study


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return shared_study(tmp_path_factory)
