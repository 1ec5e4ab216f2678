"""The one exception type for faults a user can fix, rendered alike by API, CLI and admin."""
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Fault:
    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.line is not None else ""
        if self.path:
            where = f"{where} ({self.path})" if where else self.path
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self) -> dict:
        return asdict(self)


class UserError(Exception):
    """Bad input: carries one or more located faults; raising it means nothing was stored.

    The kinds below say what went wrong, never how to answer it: the API, the CLI and the admin each
    render them their own way (the API maps each kind to a status code in one place).
    """

    def __init__(self, faults: "list[Fault] | str", *, path: str = ""):
        if isinstance(faults, str):
            faults = [Fault(message=faults, path=path)]
        self.faults = list(faults)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return "\n".join(str(fault) for fault in self.faults)

    def as_dict(self) -> dict:
        return {"message": self.message, "errors": [fault.as_dict() for fault in self.faults]}


class NotFound(UserError):
    """The thing named does not exist (or is not visible to the caller's tenant)."""


class Conflict(UserError):
    """The request is well formed but clashes with what is stored: a key taken, an execution ended."""


class PermissionDenied(UserError):
    """The caller may see the thing but lacks the role to do this with it (docs/security.md).
    A caller who may not even see it gets NotFound instead, so that its existence is not revealed."""
