"""`route`: the one wrapper around every endpoint, so auth, methods and errors behave alike."""
from django.views.decorators.csrf import csrf_exempt

from flows.errors import UserError

from .auth import authenticate
from .rendering import error_response


def route(*, auth: bool = True, **handlers):
    """A view dispatching on the HTTP method: `route(GET=flow_get, PUT=flow_update)`.

    Each handler takes the request and the URL's arguments and returns a response. Without a
    valid bearer token → 401; a method with no handler → 405 (with `Allow`); any UserError a
    handler raises → its status with `UserError.as_dict()`.
    """
    allowed = ", ".join(sorted(handlers))

    @csrf_exempt
    def view(request, **kwargs):
        try:
            if auth:
                request.user = authenticate(request)
            handler = handlers.get(request.method)
            if handler is None:
                raise UserError(f"method {request.method} is not allowed here: use {allowed}", status=405)
            return handler(request, **kwargs)
        except UserError as error:
            response = error_response(error)
            if error.status == 405:
                response["Allow"] = allowed
            return response

    view.handlers = handlers
    return view
