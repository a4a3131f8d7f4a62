"""The load test drives a stack of real processes (each service its own `python -m services.<svc>`, real
Envoy): in-process services would share the load generator's event loop and measure only its contention."""

from collections.abc import Iterator

import pytest

from tests.faults.conftest import ProcessStack


@pytest.fixture(scope="package")
def load_stack(pg_base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    made = ProcessStack(pg_base, tmp_path_factory.mktemp("load"), prefix="load")
    try:
        made.start_all()
        yield made
    finally:
        made.stop_all()
