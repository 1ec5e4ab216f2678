"""Bearer-token authentication: `Authorization: Bearer <token>`."""
from flows.errors import UserError
from flows.services import token_user


def authenticate(request):
    """The user the request's bearer token belongs to; a 401 UserError otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UserError(
            "authentication required: send 'Authorization: Bearer <token>' "
            "(create a token with `python manage.py token create USERNAME`)",
            status=401,
        )
    user = token_user(token)
    if user is None:
        raise UserError("invalid or revoked API token", status=401)
    return user
