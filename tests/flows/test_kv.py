"""The KV store (docs/core-tasks.md): values per tenant and namespace with a TTL, the `kv()`
expression function, and the API with namespace-files permissions. The Set, Get and Delete tasks
run end to end in test_core_tasks.py."""
from datetime import timedelta

import pytest

from flows.errors import Conflict, UserError
from flows.expressions import ExpressionError, render
from flows.models import KeyValue
from flows.selectors import MISSING, kv_value
from flows.services import kv_delete, kv_put, tenant_create
from tests.support.auth import api_client

pytestmark = pytest.mark.django_db
BASE = "/api/v1/main/namespaces/company.team/kv"


def test_values_are_kept_per_tenant_and_namespace():
    tenant_create(key="other")
    kv_put(tenant_key="main", namespace="company.team", key="api_url", value={"url": "https://x", "n": 3})

    assert kv_value(tenant_key="main", namespace="company.team", key="api_url") == {"url": "https://x", "n": 3}
    assert kv_value(tenant_key="main", namespace="company", key="api_url") is MISSING
    assert kv_value(tenant_key="other", namespace="company.team", key="api_url") is MISSING


def test_a_value_past_its_ttl_is_missing():
    kv_put(tenant_key="main", namespace="company.team", key="token", value="abc", ttl="PT1H")
    assert kv_value(tenant_key="main", namespace="company.team", key="token") == "abc"

    KeyValue.objects.filter(key="token").update(expires=KeyValue.objects.get(key="token").created - timedelta(seconds=1))
    assert kv_value(tenant_key="main", namespace="company.team", key="token") is MISSING
    assert kv_delete(tenant_key="main", namespace="company.team", key="token") is False  # it was not there any more


def test_overwrite_false_refuses_a_live_key_and_keeps_its_value():
    kv_put(tenant_key="main", namespace="company.team", key="k", value=1)
    with pytest.raises(Conflict):
        kv_put(tenant_key="main", namespace="company.team", key="k", value=2, overwrite=False)
    assert kv_value(tenant_key="main", namespace="company.team", key="k") == 1


@pytest.mark.parametrize("namespace, key, ttl, fragment", [
    ("company.team", "bad key", None, "invalid key"),
    ("Company", "k", None, "invalid namespace"),
    ("company.team", "k", "soon", "ISO-8601"),
    ("company.team", "k", "PT0S", "not a positive duration"),
])
def test_bad_keys_namespaces_and_ttls_are_refused_and_store_nothing(namespace, key, ttl, fragment):
    with pytest.raises(UserError) as refused:
        kv_put(tenant_key="main", namespace=namespace, key=key, value="v", ttl=ttl)
    assert fragment in refused.value.message
    assert not KeyValue.objects.exists()


def test_the_kv_function_reads_the_flows_namespace_or_another():
    kv_put(tenant_key="main", namespace="company.team", key="greeting", value="hello")
    kv_put(tenant_key="main", namespace="company", key="greeting", value="parent")
    context = {"flow": {"tenantId": "main", "namespace": "company.team", "id": "f"}}

    assert render("{{ kv('greeting') }}", context) == "hello"
    assert render("{{ kv('greeting', namespace='company') }}", context) == "parent"
    assert render("{{ kv('absent') is null }}", context) == "true"
    with pytest.raises(ExpressionError, match="does not exist in the namespace 'company.team'"):
        render("{{ kv('absent', errorOnMissing=true) }}", context)


# --- API -----------------------------------------------------------------------------------------


def test_a_value_is_put_read_listed_and_deleted_over_the_api():
    developer = api_client("dev", roles={"main": "developer"})

    assert developer.put(f"{BASE}/config", '{"retries": 3}', content_type="application/json").status_code == 200
    assert developer.put(f"{BASE}/plain", "some text", content_type="text/plain", headers={"ttl": "PT1H"}).status_code == 200
    assert developer.get(f"{BASE}/config").json() == {"type": "JSON", "value": {"retries": 3}}
    assert developer.get(f"{BASE}/plain").json() == {"type": "STRING", "value": "some text"}
    listed = developer.get(BASE).json()
    assert [entry["key"] for entry in listed] == ["config", "plain"]
    assert listed[0]["expirationDate"] is None and listed[1]["expirationDate"] is not None

    assert developer.delete(f"{BASE}/config").json() is True
    assert developer.delete(f"{BASE}/config").json() is False
    assert developer.get(f"{BASE}/config").status_code == 404


def test_a_viewer_reads_but_may_not_write_and_another_tenant_sees_nothing():
    tenant_create(key="other")
    kv_put(tenant_key="main", namespace="company.team", key="k", value="v")
    viewer = api_client("viewer", roles={"main": "viewer"})
    stranger = api_client("stranger", roles={"other": "admin"})

    assert viewer.get(f"{BASE}/k").json() == {"type": "STRING", "value": "v"}
    assert viewer.put(f"{BASE}/k", '"w"', content_type="application/json").status_code == 403
    assert viewer.delete(f"{BASE}/k").status_code == 403
    assert stranger.get(f"{BASE}/k").status_code == 404
    assert stranger.put(f"{BASE}/k", '"w"', content_type="application/json").status_code == 404
    assert kv_value(tenant_key="main", namespace="company.team", key="k") == "v"


def test_a_bad_ttl_over_the_api_is_refused_and_stores_nothing():
    developer = api_client("dev", roles={"main": "developer"})
    answer = developer.put(f"{BASE}/k", '"v"', content_type="application/json", headers={"ttl": "tomorrow"})
    assert answer.status_code == 422 and "ISO-8601" in answer.json()["message"]
    assert not KeyValue.objects.exists()


def test_a_body_that_is_no_storable_json_is_refused_over_the_api():
    developer = api_client("dev", roles={"main": "developer"})
    answer = developer.put(f"{BASE}/k", "NaN", content_type="application/json")
    assert answer.status_code == 422 and "must be JSON" in answer.json()["message"]
    assert not KeyValue.objects.exists()
