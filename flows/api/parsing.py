"""What ninja does not read for us: raw text bodies (flow sources, JSON before ninja checks it),
execution inputs as form fields (files included) or JSON, namespace files, and `key:value` labels."""
import json

from django.core.files.base import ContentFile
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from flows import storage
from flows.errors import Fault, UserError

from .errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def text_body(request) -> str:
    """The raw body as UTF-8 text, whatever the content type."""
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedBody(f"the body is not UTF-8 text (byte {error.start})") from None


def json_value(text: str):
    if not text.strip():
        raise MalformedBody("a JSON object is required as the request body")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedBody([Fault(f"invalid JSON: {error.msg}", line=error.lineno, column=error.colno)]) from None


def inputs_body(request) -> dict:
    """Execution inputs, as Kestra takes them: form fields (multipart or urlencoded) or a JSON
    object; no body at all means no inputs. Values stay as sent: the engine types them."""
    if request.content_type in FORM_TYPES:
        given = {key: values[-1] if len(values) == 1 else values for key, values in request.POST.lists()}
        for key, uploads in request.FILES.lists():
            if key == "files":  # Kestra's older form: a part named `files` whose filename is the input id
                given.update({upload.name: upload for upload in uploads})
            else:
                given[key] = uploads[-1]
        return given
    text = text_body(request)
    if not text.strip():
        return {}
    if request.content_type not in ("application/json", "", "text/plain"):
        raise UnsupportedMediaType(
            f"unsupported content type '{request.content_type}': send inputs as form fields or a JSON object",
        )
    data = json_value(text)
    if not isinstance(data, dict):
        raise UserError(f"inputs must be a JSON object of input id to value, got {type(data).__name__}",
                        path="inputs")
    return data


def labels_dict(labels: list[str]) -> dict:
    """Kestra's `?labels=key:value`, repeated; a later value of the same key wins."""
    result = {}
    for item in labels:
        key, colon, value = item.partition(":")
        if not colon or not key.strip():
            raise UserError(f"label '{item}' must be written key:value", path="labels")
        result[key.strip()] = value
    return result


def file_body(request):
    """A file sent as the raw body (any content type) or as the multipart part `fileContent` (or
    the only part), read up to STORAGE_MAX_FILE_BYTES: a larger one is refused with 413 before it
    is stored. Returns a Django File."""
    limit = storage.max_file_bytes()
    if request.content_type == "multipart/form-data":
        try:  # Django parses multipart bodies of POST requests only; PUT is parsed here
            _, files = MultiPartParser(request.META, request, request.upload_handlers, request.encoding).parse()
        except MultiPartParserError as error:
            raise MalformedBody(f"the multipart body cannot be read: {error}") from None
        upload = files.get("fileContent") or (next(iter(files.values())) if len(files) == 1 else None)
        if upload is None:
            raise MalformedBody("send the file as the multipart part 'fileContent'")
        if upload.size > limit:
            raise PayloadTooLarge(f"the file is {upload.size} bytes: at most {limit} bytes (STORAGE_MAX_FILE_BYTES)")
        return upload
    content = request.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes (STORAGE_MAX_FILE_BYTES)")
    return ContentFile(content)
