"""Property-based fuzzing (marker `fuzz`). Few examples by default, so CI stays short and always
tries the same ones (derandomized); `FUZZ_EXAMPLES=2000 .venv/bin/pytest -m fuzz` runs more, with
fresh random examples each time."""
import os

import pytest
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None

settings.register_profile(
    "fuzz",
    max_examples=EXAMPLES or 60,
    derandomize=EXAMPLES is None,  # the default short run: the same examples on every run
    deadline=None,
    database=None,  # nothing written into the work tree; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
)
FUZZ = settings.get_profile("fuzz")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/fuzz/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.fuzz)
