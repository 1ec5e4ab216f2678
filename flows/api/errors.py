"""Faults only an HTTP request can have. Like the services' errors (flows/errors.py) they say what
went wrong; `api.render_error` picks the status code. `headers` go on the answer."""
from flows.errors import UserError


class MalformedBody(UserError):
    """The body is not UTF-8, not JSON, or missing where one is required."""


class Unauthorized(UserError):
    headers = {"WWW-Authenticate": 'Bearer realm="api"'}


class MethodNotAllowed(UserError):
    def __init__(self, method: str, allowed: list[str]):
        super().__init__(f"method {method} is not allowed here: use {', '.join(allowed)}")
        self.headers = {"Allow": ", ".join(allowed)}


class UnsupportedMediaType(UserError):
    """A body in a content type the endpoint does not read."""


class PayloadTooLarge(UserError):
    """The body is over the size the server reads (DATA_UPLOAD_MAX_MEMORY_SIZE)."""


class InternalError(UserError):
    """Not the caller's fault: a bug, logged by the server; the answer carries no detail."""
