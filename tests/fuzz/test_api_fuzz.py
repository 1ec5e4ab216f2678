"""Fuzzing the REST API with schemathesis: requests generated from `/api/v1/openapi.json` (django-ninja
writes it from the code), sent in process to the WSGI application with a bearer token of a superuser
who administers tenant `main`. Whatever the request, no answer is a 5xx."""
import pytest
import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error

from flows import dispatch
from flows.models import Role
from flows.services import flow_upload, membership_set, token_create, worker_group_create
from project.wsgi import application

from .conftest import FUZZ

pytestmark = pytest.mark.django_db(transaction=True)  # every request commits, as in production

API_EXAMPLES = FUZZ.max_examples // 6 or 1  # per operation: there are about forty of them

FLOW = """
id: hello
namespace: company.team
inputs:
  - id: name
    type: STRING
    defaults: you
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
    workerGroup: {key: gpu}
"""


# Read when the module is collected: the document needs no database. (schemathesis' lazy
# `from_fixture` does not run on this pytest.)
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def token(django_user_model):
    worker_group_create(key="gpu")
    flow_upload(source=FLOW, tenant_key="main")
    value = token_create(username="fuzzer")
    membership_set(username="fuzzer", tenant_key="main", role=Role.ADMIN)
    django_user_model.objects.filter(username="fuzzer").update(is_superuser=True, is_staff=True)
    return value


@schema.parametrize()
@settings(FUZZ, max_examples=API_EXAMPLES)
def test_no_request_gets_a_server_error(case, token):
    if case.path_parameters and "tenant" in case.path_parameters:
        case.path_parameters["tenant"] = "main"  # a tenant that exists, so requests reach past the lookup
    if case.query and "wait" in case.query:
        case.query["wait"] = "false"  # ?wait=true holds the request until the execution ends: nothing runs here
    with dispatch.sending_to(lambda message: None):  # no broker: messages of created executions go nowhere
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error])
