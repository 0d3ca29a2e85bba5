"""The Developer API's view plumbing, shared by every app: the ``/teams/{teamId}/`` view base
(path ids checked first, then the key, then the rate limit), the caller's address, validated
query parameters and JSON bodies, and a list's page."""

import ipaddress
import uuid
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from lukittu.api import ApiError, Code, field_error
from lukittu.fields import ClosedSerializer, error_list
from lukittu.ids import parse_uuid


def parse_path_id(value: str, label: str) -> uuid.UUID:
    """A UUID in its canonical 36-character form (any case), else 400 ``Invalid <label>``."""
    try:
        return parse_uuid(value)
    except ValueError:
        raise ApiError(400, Code.BAD_REQUEST, f"Invalid {label}") from None


def client_ip(request: Request) -> str | None:
    """The caller's address (``NUM_PROXIES`` trusted hops of X-Forwarded-For honoured)."""
    candidate = BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return None


class TeamApiView(APIView):
    """A Developer API view under ``/teams/{teamId}/``: path ids are checked before anything
    else, then the key (authentication, team), then the rate limit."""

    # URL parameter -> the attribute that holds it as a UUID.
    path_ids: dict[str, str] = {"teamId": "team_id"}
    # No OPTIONS: there is no metadata to describe, so it is a 405 like any unknown method.
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        for name, attribute in self.path_ids.items():
            setattr(self, attribute, parse_path_id(kwargs[name], name))
        super().initial(request, *args, **kwargs)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        for name, value in getattr(request, "rate_limit", {}).items():
            response[name] = value
        return super().finalize_response(request, response, *args, **kwargs)


class JsonApiView(TeamApiView):
    parser_classes = [JSONParser]


def parse_query(request: Request, serializer_class: type[Serializer]) -> dict[str, Any]:
    """A list's query parameters, validated (every list of the Developer API). A bad value, a
    repeated parameter or an unknown one (a misspelt ``productID`` would otherwise quietly list
    everything) is a 400 that names each."""
    params = request.query_params
    known = serializer_class().fields
    repeated = sorted(name for name in known if len(params.getlist(name)) > 1)
    unknown = [name for name in params if name not in known]
    serializer = serializer_class(data={name: params[name] for name in params if name in known})
    errors = [] if serializer.is_valid() else error_list(serializer.errors)
    errors += [field_error("Give this parameter once.", [name]) for name in repeated]
    errors += [field_error("Unknown parameter.", [name]) for name in unknown]
    if errors:
        names = ", ".join(dict.fromkeys(str(error["path"][0]) for error in errors))
        raise ApiError(
            400, Code.BAD_REQUEST, f"Invalid query parameter: {names}", data={"errors": errors}
        )
    return serializer.validated_data


JSON_HINT = "Send a JSON object with Content-Type: application/json"


def invalid_body(errors: list[dict[str, Any]]) -> ApiError:
    return ApiError(400, Code.BAD_REQUEST, "Invalid request body", data={"errors": errors})


def json_body(request: Request, serializer_class: type[ClosedSerializer]) -> dict[str, Any]:
    """The validated JSON object of a create or update."""
    try:
        data = request.data
    except exceptions.UnsupportedMediaType:
        raise ApiError(
            415,
            Code.BAD_REQUEST,
            "Unsupported media type",
            data={"errors": [field_error(JSON_HINT, [])]},
        ) from None
    except (exceptions.ParseError, RecursionError):
        # RecursionError: JSON nested too deeply for Python's parser is malformed too.
        raise ApiError(400, Code.BAD_REQUEST, "Malformed JSON body") from None
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise invalid_body(error_list(serializer.errors))
    return dict(serializer.validated_data)


def page_of(queryset: QuerySet, query: dict[str, Any]) -> tuple[list[Any], int, bool]:
    paginator = Paginator(queryset, query["pageSize"])
    page = paginator.get_page(query["page"]) if paginator.count else None
    items = list(page.object_list) if page and page.number == query["page"] else []
    return items, paginator.count, query["page"] < paginator.num_pages
