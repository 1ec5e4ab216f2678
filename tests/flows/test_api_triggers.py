"""Triggers over the REST API through Django's test client: the trigger search (a token needed) and
webhooks (the key in the URL is the credential: no token, a wrong key is a 404 and starts nothing)."""
import base64
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from flows.models import Execution, LogLine, TriggerState
from flows.services import flow_upload, tenant_create, token_create

pytestmark = pytest.mark.django_db

KEY = "4wjtkzwVGBM9yKnjm3yv8r"
HOOKED = f"""\
id: hooked
namespace: company.team
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.body }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
    inputs:
      who: "{{{{ trigger.body.who if trigger.body is mapping else trigger.parameters.who[0] }}}}"
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""
URL = f"/api/v1/main/executions/webhook/company.team/hooked/{KEY}"


@pytest.fixture
def api():
    get_user_model().objects.create_superuser("root", "", "pw")
    return Client(headers={"Authorization": f"Bearer {token_create(username='root')}"})


@pytest.fixture
def hooked():
    return flow_upload(source=HOOKED, tenant_key="main")


# --- webhooks -----------------------------------------------------------------------------------


def test_a_webhook_call_with_the_right_key_starts_one_execution_without_a_token(hooked):
    response = Client().post(f"{URL}?source=ci&source=cd", json.dumps({"who": "alice", "n": 1}),
                             content_type="application/json", headers={"X-Event": "push", "Authorization": "x"})

    assert response.status_code == 200, response.content
    body = response.json()
    execution = Execution.objects.get()
    assert body["id"] == str(execution.id) and body["trigger"]["id"] == "hook"
    variables = execution.trigger["variables"]
    assert variables["body"] == {"who": "alice", "n": 1}
    assert variables["parameters"] == {"source": ["ci", "cd"]}
    assert variables["headers"]["X-Event"] == ["push"]
    assert "Authorization" not in variables["headers"]  # credentials are never stored in an execution
    assert execution.inputs == {"who": "alice"}
    hook = TriggerState.objects.get(trigger_id="hook")
    assert hook.last_execution == execution.id and hook.last_date is not None


def test_get_and_put_are_webhook_calls_too_and_a_text_body_stays_text(hooked):
    assert Client().get(f"{URL}?who=bob").status_code == 200
    assert Client().put(f"{URL}?who=carol", "plain words", content_type="text/plain").status_code == 200
    by_get, by_put = Execution.objects.order_by("created")
    assert by_get.inputs == {"who": "bob"} and by_get.trigger["variables"]["body"] is None
    assert by_put.inputs == {"who": "carol"} and by_put.trigger["variables"]["body"] == "plain words"


@pytest.mark.parametrize("url", [
    URL.replace(KEY, KEY[:-1]),  # a wrong key
    URL.replace(KEY, KEY + "x"),
    URL.replace("/hooked/", "/missing/"),  # no such flow
    URL.replace("/main/", "/nowhere/"),  # no such tenant
])
def test_a_wrong_key_flow_or_tenant_is_the_same_404_and_starts_nothing(hooked, url):
    response = Client().post(url, "{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["message"] == "no webhook at this address"
    assert not Execution.objects.exists()


def test_a_disabled_trigger_or_flow_has_no_webhook(hooked):
    TriggerState.objects.filter(trigger_id="hook").update(disabled=True)
    assert Client().post(URL).status_code == 404
    TriggerState.objects.filter(trigger_id="hook").update(disabled=False)
    flow_upload(source=HOOKED.replace("namespace: company.team\n", "namespace: company.team\ndisabled: true\n"),
                tenant_key="main")
    assert Client().post(URL).status_code == 404
    assert not Execution.objects.exists()


def test_a_key_of_another_trigger_type_is_no_webhook(hooked):
    assert Client().post("/api/v1/main/executions/webhook/company.team/hooked/0 2 * * *").status_code == 404


def test_a_key_written_as_an_expression_is_rendered_against_the_flow_at_each_call(monkeypatch):
    monkeypatch.setenv("SECRET_WEBHOOK_KEY", base64.b64encode(b"from-a-secret").decode())
    flow_upload(source=HOOKED.replace(f"key: {KEY}", "key: \"{{ secret('WEBHOOK_KEY') }}\""), tenant_key="main")
    flow_upload(source=HOOKED.replace("id: hooked", "id: by-id").replace(f"key: {KEY}", "key: '{{ flow.id }}'"),
                tenant_key="main")

    assert Client().post("/api/v1/main/executions/webhook/company.team/hooked/from-a-secret?who=a").status_code == 200
    assert Client().post("/api/v1/main/executions/webhook/company.team/by-id/by-id?who=a").status_code == 200
    assert Client().post("/api/v1/main/executions/webhook/company.team/hooked/{{ secret('WEBHOOK_KEY') }}"
                         .replace(" ", "%20")).status_code == 404
    assert Execution.objects.count() == 2


def test_a_key_that_cannot_be_rendered_matches_no_call_and_says_why_in_the_trigger_logs():
    flow_upload(source=HOOKED.replace(f"key: {KEY}", "key: \"{{ secret('MISSING_KEY') }}\""), tenant_key="main")
    assert Client().post("/api/v1/main/executions/webhook/company.team/hooked/anything").status_code == 404
    assert not Execution.objects.exists()
    hook = TriggerState.objects.get(trigger_id="hook")
    assert "the webhook key cannot be rendered" in LogLine.objects.get(trigger_state=hook).message


def test_inputs_the_flow_refuses_answer_422_and_say_why_in_the_trigger_state(hooked):
    flow_upload(source=HOOKED.replace("type: STRING\n    defaults: nobody", "type: INT"), tenant_key="main")
    response = Client().post(URL, json.dumps({"who": "alice"}), content_type="application/json")
    assert response.status_code == 422 and "who" in response.json()["message"]
    assert not Execution.objects.exists()
    assert "who" in TriggerState.objects.get(trigger_id="hook").last_error


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_limit_is_refused_and_starts_nothing(hooked):
    response = Client().post(URL, json.dumps({"who": "x" * 2000}), content_type="application/json")
    assert response.status_code == 413
    assert not Execution.objects.exists()


# --- trigger search ---------------------------------------------------------------------------


def test_trigger_search_lists_each_trigger_state_of_the_tenant(api, hooked):
    tenant_create(key="other")
    flow_upload(source=HOOKED, tenant_key="other")
    flow_upload(source=HOOKED.replace("id: hooked", "id: second").replace("namespace: company.team",
                                                                         "namespace: company.team.ml"),
                tenant_key="main")

    body = api.get("/api/v1/main/triggers/search?namespace=company.team").json()

    assert body["total"] == 4
    assert [(r["flowId"], r["triggerId"]) for r in body["results"]] == [
        ("hooked", "hook"), ("hooked", "nightly"), ("second", "hook"), ("second", "nightly")]
    nightly = body["results"][1]
    assert nightly["type"] == "io.kestra.plugin.core.trigger.Schedule" and nightly["tenantId"] == "main"
    assert nightly["nextExecutionDate"].endswith(":00Z") or nightly["nextExecutionDate"].endswith("+00:00")
    assert body["results"][0]["nextExecutionDate"] is None  # a webhook is never due by the clock
    assert {"date", "workerId", "lastResult", "lastError", "executionId", "disabled"} <= set(nightly)
    only = api.get("/api/v1/main/triggers/search?flowId=second&size=1&page=2").json()
    assert only["total"] == 2 and [r["triggerId"] for r in only["results"]] == ["nightly"]


def test_trigger_search_needs_a_token_and_a_known_tenant(api, hooked):
    assert Client().get("/api/v1/main/triggers/search").status_code == 401
    assert api.get("/api/v1/nowhere/triggers/search").status_code == 404
    assert api.get("/api/v1/main/triggers/search?size=0").status_code == 422


def test_the_admin_disables_enables_and_unlocks_triggers(hooked):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("admin", "", "pw"))
    hook = TriggerState.objects.get(trigger_id="hook")
    url = reverse("admin:flows_triggerstate_changelist")
    assert client.get(url).status_code == 200
    assert client.get(reverse("admin:flows_triggerstate_change", args=[hook.pk])).status_code == 200

    client.post(url, {"action": "disable", "_selected_action": [hook.pk]})
    assert TriggerState.objects.get(pk=hook.pk).disabled
    assert Client().post(URL).status_code == 404
    client.post(url, {"action": "enable", "_selected_action": [hook.pk]})
    assert not TriggerState.objects.get(pk=hook.pk).disabled
    TriggerState.objects.filter(pk=hook.pk).update(evaluation="6a2f41a0-1111-4b5b-9c39-000000000001", lock_owner="x@y")
    client.post(url, {"action": "unlock", "_selected_action": [hook.pk]})
    assert TriggerState.objects.get(pk=hook.pk).lock_owner == ""
