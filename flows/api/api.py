"""The REST API at /api/v1/ (docs/api.md): a NinjaAPI with bearer-token auth, strict JSON bodies,
and one exception handler that renders every error as `{"message": ..., "errors": [...]}`."""
import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.security import HttpBearer

from flows.errors import Conflict, Fault, NotFound, PermissionDenied, UserError
from flows.permissions import actor_for_token
from flows.services import token_find
from flows.storable import nul_path
from flows.yaml_source import path_to_text

from . import views
from .errors import (
    InternalError, MalformedBody, MethodNotAllowed, PayloadTooLarge, Unauthorized, UnsupportedMediaType,
)
from .parsing import json_value, text_body

logger = logging.getLogger(__name__)


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`, a token from `python manage.py token create USERNAME`.
    Raising, rather than returning None as ninja expects, tells a missing token from a bad one.
    `request.auth` is the token's `flows.permissions.Actor`: views ask flows.permissions with it."""

    def __call__(self, request):
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("authentication required: send 'Authorization: Bearer <token>' "
                               "(create a token with `python manage.py token create USERNAME`)")
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token: str):
        api_token = token_find(token)
        if api_token is None:
            raise Unauthorized("invalid or revoked API token")
        return actor_for_token(api_token)


class JsonParser(Parser):
    """Malformed JSON is located at its line and column (ninja would say only "Cannot parse")."""

    def parse_body(self, request):
        data = json_value(text_body(request))
        where = nul_path(data)
        if where is not None:
            raise UserError("holds a NUL character (\\u0000), which cannot be stored", path=where)
        return data


class Renderer(JSONRenderer):
    json_dumps_params = {"ensure_ascii": False}


def _fault(item: dict, loc: tuple) -> Fault:
    name = loc[-1] if loc else ""
    if item["type"] == "extra_forbidden":
        message = f"unknown property '{name}'"
    elif item["type"] == "missing":
        message = f"missing required property '{name}'"
    else:
        message = f"{item['msg']} (got {json.dumps(item['input'], default=str)})"
    return Fault(message=message, path=path_to_text(loc))


class Api(NinjaAPI):
    def validation_error_from_error_contexts(self, contexts):
        """Bad parameters and bodies as located faults rather than ninja's `{"detail": [...]}`: a
        body's faults are placed inside it (past the parameter's name), a query or path parameter's
        are placed at its name (not at an item of a repeated one)."""
        faults = []
        for context in contexts:
            in_body = context.model.__ninja_param_source__ == "body"
            for item in context.pydantic_validation_error.errors(include_url=False):
                loc = item["loc"][1:] if in_body else item["loc"][:1]
                if in_body and not loc and item["type"] == "missing":  # no body at all
                    return MalformedBody("a JSON object is required as the request body")
                faults.append(_fault(item, loc))
        return UserError(faults)


api = Api(
    title="Worker groups for Celery",
    version="1",
    description="Kestra-style flows whose tasks run on Celery worker groups. Every endpoint but this document "
                "and /api/v1/docs needs `Authorization: Bearer <token>` (`python manage.py token create USERNAME`).",
    urls_namespace="api",
    auth=BearerToken(),
    parser=JsonParser(),
    renderer=Renderer(),
)
# Instance-wide paths first: a tenant key fills the first segment of every tenant-scoped path.
for router in (views.plugins, views.tenants, views.worker_groups, views.flows, views.namespaces,
               views.namespace_files, views.kv_store, views.executions, views.triggers, views.webhooks):
    api.add_router("", router)

# The nearest kind in an error's class hierarchy picks its status code.
STATUS = {
    MalformedBody: 400, Unauthorized: 401, PermissionDenied: 403, NotFound: 404, MethodNotAllowed: 405, Conflict: 409,
    PayloadTooLarge: 413, UnsupportedMediaType: 415, UserError: 422, InternalError: 500,
}
TOO_LARGE = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


@api.exception_handler(Exception)
@api.exception_handler(Http404)
@api.exception_handler(HttpError)
@api.exception_handler(UserError)
def render_error(request, error):
    """The one exception handler: every error becomes the error body (docs/api.md). Errors that
    are not ours are first given their kind; an unexpected one is a bug, logged with its traceback
    and answered without detail (never Django's debug page, nor ninja's traceback)."""
    status = None
    if isinstance(error, HttpError):
        if isinstance(error.__cause__, UserError):
            error = error.__cause__  # what JsonParser raised, wrapped by ninja in a 400 "Cannot parse"
        else:  # ninja's own; none is expected
            status, error = error.status_code, UserError(str(error))
    elif isinstance(error, TOO_LARGE):  # Django refuses the body when the view first reads it
        error = PayloadTooLarge(f"the request body is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
                                f"bytes and {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields")
    elif isinstance(error, Http404):
        error = NotFound(f"no API endpoint at {request.path}: see /api/v1/docs")
    elif not isinstance(error, UserError):
        logger.error("%s %s failed", request.method, request.path, exc_info=error)
        error = InternalError("internal error: the server logged it")
    status = status or next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)
    response = api.create_response(request, error.as_dict(), status=status)
    for name, value in getattr(error, "headers", {}).items():
        response[name] = value
    return response
