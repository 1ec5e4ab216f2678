"""The parsing probes through the API: every one is a 422 with the YAML line and column, in the
JSON error body, and nothing is stored (the parsing itself is tested in test_yaml_source.py)."""
import time

import pytest

from flows.models import Flow, FlowRevision
from tests.flows.test_yaml_source import FLOW, alias_bomb
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("source, line", [
    (alias_bomb(), 11),
    (FLOW + "variables:\n  deep: " + "[" * 300 + "]" * 300 + "\n", 8),
    (FLOW + "variables:\n  n: " + "9" * 5000 + "\n", 8),
    (FLOW + "variables:\n  d: 2001-13-14\n", 8),
    (FLOW + "variables:\n  f: !!python/name:os.system\n", 8),
    (FLOW.replace("format: hi", 'format: "{{ ' + "(" * 100 + "1" + ")" * 100 + ' }}"'), 6),
], ids=["alias bomb", "nested 300 deep", "5000 digits", "bad date", "python tag", "100 parentheses"])
def test_unreadable_flows_are_located_422s_and_nothing_is_stored(source, line):
    api = api_client("alice", superuser=True)
    started = time.monotonic()
    response = api.post("/api/v1/main/flows", source, content_type="application/x-yaml")
    assert response.status_code == 422, response.content[:300]
    assert time.monotonic() - started < 5  # the alias bomb took 12 s and 630 MB
    [error] = response.json()["errors"]
    assert error["line"] == line and error["column"], error
    assert not Flow.objects.exists() and not FlowRevision.objects.exists()
    assert api.get("/api/v1/main/flows/company.team/demo").status_code == 404
