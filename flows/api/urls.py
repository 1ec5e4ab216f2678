"""The URLs of /api/v1/: ninja's, with the two answers ninja gives outside its exception handling
turned into our error body (a method a path does not take, a path it does not know). Django's own
400 and 500 pages, for what fails before a view (a bad Host header, a middleware), are the error
body too under /api/ (`bad_request` and `server_error`, set in project/urls.py)."""
from functools import wraps

from django.core.exceptions import DisallowedHost
from django.http import HttpResponseNotAllowed
from django.urls import re_path
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from flows.errors import NotFound, UserError

from .api import api
from .errors import InternalError, MalformedBody, MethodNotAllowed

app_name = "api"


def json_405(view):
    """ninja's PathView answers a wrong method with a plain-text 405 without calling the API, nor
    authenticating: without a valid token the answer stays 401, whatever the method."""

    @wraps(view)  # keeps ninja's csrf_exempt
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        try:
            api.auth[0](request)
            raise MethodNotAllowed(request.method, sorted(response["Allow"].split(", ")))
        except UserError as error:
            return api.on_exception(request, error)

    return wrapper


@csrf_exempt  # like ninja's views: the API authenticates by token, not by cookie
def not_found(request, **kwargs):
    return api.on_exception(request, NotFound(f"no API endpoint at {request.path}: see /api/v1/docs"))


urlpatterns, _, _ = api.urls
for pattern in urlpatterns:
    # ninja's root view, which must stay named `api-root` (ninja reverses it), is an HTML 404
    pattern.callback = not_found if pattern.name == "api-root" else json_405(pattern.callback)
urlpatterns.append(re_path(r"^", not_found))  # any other path under /api/v1/


def bad_request(request, exception=None, **kwargs):
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception, **kwargs)
    if isinstance(exception, DisallowedHost):
        return api.on_exception(request, MalformedBody("this server does not answer to that Host header "
                                                       "(ALLOWED_HOSTS, docs/configuration.md)"))
    return api.on_exception(request, MalformedBody("bad request"))


def server_error(request, **kwargs):
    if not request.path.startswith("/api/"):
        return defaults.server_error(request, **kwargs)
    return api.on_exception(request, InternalError("internal error: the server logged it"))
