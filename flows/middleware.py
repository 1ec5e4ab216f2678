"""Request checks that hold for every page and API call alike."""
from django.http import HttpResponseBadRequest, JsonResponse

from .storable import NUL


class RefuseNulCharacters:
    """A path, query parameter or form field holding a NUL character (`%00`) is refused with 400
    before any view runs: PostgreSQL can neither store nor compare such text (docs/limits.md)."""

    MESSAGE = "the request holds a NUL character (%00), which cannot be stored or searched for"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._holds_nul(request):
            if request.path.startswith("/api/"):
                return JsonResponse({"message": self.MESSAGE, "errors": [
                    {"message": self.MESSAGE, "path": "", "line": None, "column": None}]}, status=400)
            return HttpResponseBadRequest(self.MESSAGE)
        return self.get_response(request)

    @staticmethod
    def _holds_nul(request) -> bool:
        if NUL in request.path:
            return True
        fields = [request.GET]
        if request.method == "POST" and not request.path.startswith("/api/"):
            fields.append(request.POST)  # the admin's forms; the API reads and checks its own bodies
        return any(NUL in key or any(NUL in value for value in values)
                   for query in fields for key, values in query.lists())
