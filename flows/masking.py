"""SECRET inputs (docs/inputs.md#secret): stored encrypted, decrypted only into the expression
context of the task runs that use them, and masked wherever they are shown: API answers, the admin,
log lines and task-run errors. The values of `secret()` are masked the same way.

The key is derived from Django's SECRET_KEY, which every process shares (docs/configuration.md).
A value is stored as `MARKER + Fernet token`, so a stored secret is recognisable without its flow.
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from . import environment_values

MASK = "******"
MARKER = "secret:v1:"
# Shorter values are not searched for in logs: masking every "a" would make the logs unreadable.
MIN_MASKED_CHARS = 4


def _fernet() -> Fernet:
    key = hashlib.sha256(b"flows.masking:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return MARKER + _fernet().encrypt(value.encode()).decode()


def is_encrypted(value) -> bool:
    return isinstance(value, str) and value.startswith(MARKER)


def decrypt(value: str) -> str:
    """The plain value; a stored secret that cannot be decrypted (SECRET_KEY changed) is an error
    that names the cause, never a silent wrong value."""
    try:
        return _fernet().decrypt(value[len(MARKER):].encode()).decode()
    except InvalidToken:
        raise ValueError("a SECRET input cannot be decrypted: was SECRET_KEY changed since the execution "
                         "was created?") from None


def reveal(value):
    """`value` with every stored secret in it decrypted (for the expression context)."""
    if is_encrypted(value):
        return decrypt(value)
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def hide(value):
    """`value` with every stored secret in it replaced by the mask (for API answers and the admin)."""
    if is_encrypted(value):
        return MASK
    if isinstance(value, dict):
        return {key: hide(item) for key, item in value.items()}
    if isinstance(value, list):
        return [hide(item) for item in value]
    return value


def secret_values(value) -> list[str]:
    """The plain secrets held (encrypted) in `value` and every secret `secret()` can read
    (docs/expressions.md#secrets-envs-and-globals), longest first, for `mask_text`."""
    found: list[str] = [plain for plain in environment_values.secret_values() if len(plain) >= MIN_MASKED_CHARS]

    def visit(item):
        if is_encrypted(item):
            try:
                plain = decrypt(item)
            except ValueError:
                return
            if len(plain) >= MIN_MASKED_CHARS:
                found.append(plain)
        elif isinstance(item, dict):
            for child in item.values():
                visit(child)
        elif isinstance(item, list):
            for child in item:
                visit(child)

    visit(value)
    return sorted(set(found), key=len, reverse=True)


def mask_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def mask_deep(value, secrets: list[str]):
    """`value` (outputs, any JSON) with every secret inside its strings masked."""
    if not secrets:
        return value
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {key: mask_deep(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_deep(item, secrets) for item in value]
    return value
