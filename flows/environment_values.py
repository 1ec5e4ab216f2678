"""What expressions read from the process environment (docs/expressions.md#secrets-envs-and-globals):
`secret('NAME')` from `SECRET_NAME` (base64, as Kestra's open-source edition), `envs.name` from
`ENV_NAME` (the prefix is the ENV_VARS_PREFIX setting), and `globals` from the KESTRA_GLOBALS setting. Every process that renders or shows an
execution (web, executor, workers) gets the same environment (docs/configuration.md).
"""
import base64
import binascii
import os
from collections.abc import Mapping

from django.conf import settings

SECRET_PREFIX = "SECRET_"
NOT_SECRETS = {"SECRET_KEY"}  # Django's own key is never readable from a flow


class SecretNotFound(LookupError):
    pass


def _decoded(variable: str, encoded: str) -> str:
    try:
        return base64.b64decode("".join(encoded.split()), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"the environment variable {variable} is not base64-encoded UTF-8 text") from None


def secret(name: str) -> str:
    """The secret `name` (case-insensitive, as Kestra), decoded."""
    if not isinstance(name, str) or not name:
        raise SecretNotFound("secret() takes the name of a secret, a non-empty string")
    wanted = SECRET_PREFIX + name.upper()
    for variable, encoded in os.environ.items():
        if variable.upper() == wanted and variable not in NOT_SECRETS:
            return _decoded(variable, encoded)
    raise SecretNotFound(f"no secret named '{name}': set the environment variable {wanted} to its "
                         f"base64-encoded value (docs/expressions.md#secrets-envs-and-globals)")


def secret_values() -> list[str]:
    """Every configured secret's value, for masking (flows/masking.py)."""
    values = []
    for variable, encoded in os.environ.items():
        if variable.upper().startswith(SECRET_PREFIX) and variable not in NOT_SECRETS:
            try:
                values.append(_decoded(variable, encoded))
            except ValueError:
                continue  # secret() names the fault when a flow uses it
    return values


class Envs(Mapping):
    """`envs.my_var` is `ENV_MY_VAR` (the ENV_VARS_PREFIX setting): read when used, so the expression
    sees the process's environment."""

    def _all(self) -> dict:
        prefix = settings.ENV_VARS_PREFIX
        return {variable[len(prefix):].lower(): value for variable, value in os.environ.items()
                if variable.startswith(prefix) and len(variable) > len(prefix)}

    def __getitem__(self, name):
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._all())


class Globals(Mapping):
    """`globals.x`: the KESTRA_GLOBALS setting (a JSON object, from the environment)."""

    def __getitem__(self, name):
        return settings.KESTRA_GLOBALS[name]

    def __iter__(self):
        return iter(settings.KESTRA_GLOBALS)

    def __len__(self):
        return len(settings.KESTRA_GLOBALS)
