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
    """Bad input: carries one or more located faults; raising it means nothing was stored."""

    def __init__(self, faults: "list[Fault] | str", *, path: str = "", status: int = 422):
        if isinstance(faults, str):
            faults = [Fault(message=faults, path=path)]
        self.faults = list(faults)
        self.status = status
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return "\n".join(str(fault) for fault in self.faults)

    def as_dict(self) -> dict:
        return {"message": self.message, "errors": [fault.as_dict() for fault in self.faults]}


class NotFound(UserError):
    def __init__(self, message: str):
        super().__init__(message, status=404)
