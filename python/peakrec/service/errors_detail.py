"""Rich gRPC error details (google.rpc.Status in the ``grpc-status-details-bin`` trailer), so that
programs read which request field was wrong instead of parsing the message.

peakrec's input errors name the field first (``"page.page_size: 500 is above the maximum 100"``);
:func:`status_for` turns such a message into a ``google.rpc.BadRequest`` with one field violation per
named field, the convention of Google APIs (and of grpcurl, Envoy and gRPC clients in every
language, which decode it). Servers call :func:`abort_with_details`; clients call
:func:`field_violations` on a caught ``grpc.RpcError``.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# "filters.price_min: ...", "shopper.vector[3]: ...", "filters.price_min/price_max: ..."
_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]]*(?:/[A-Za-z_][\w.\[\]]*)*): ")


def fields_named(message: str) -> list[str]:
    """The request fields a peakrec error message starts with ([] when it names none).

    ``"filters.price_min/price_max: ..."`` names both ``filters.price_min`` and ``filters.price_max``.
    """
    match = _FIELD.match(message)
    if not match:
        return []
    first, *others = match.group(1).split("/")
    prefix = first.rsplit(".", 1)[0] + "." if "." in first else ""
    return [first] + [other if "." in other else prefix + other for other in others]


def status_for(code: grpc.StatusCode, message: str, field: str | None = None) -> grpc.Status:
    """A status carrying ``message`` and, for each field (``field``, else those the message names),
    a ``google.rpc.BadRequest.FieldViolation`` whose description is the message's remainder."""
    fields = [field] if field else fields_named(message)
    description = message.split(": ", 1)[1] if fields and ": " in message else message
    details = []
    if fields:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=description) for f in fields
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=details))


def abort_with_details(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, field: str | None = None
) -> NoReturn:
    """Ends the RPC with ``code`` and ``message`` (as ``context.abort`` does) plus a BadRequest
    detail naming ``field`` (default: the fields the message starts with). Raises, like abort."""
    context.abort_with_status(status_for(code, message, field))
    raise AssertionError("abort_with_status returned")  # unreachable: grpc raises


def field_violations(err: Any) -> list[tuple[str, str]]:
    """(field, description) of every BadRequest field violation a failed call carries ([] if none)."""
    try:
        status = rpc_status.from_call(err)
    except (AttributeError, ValueError):
        return []
    if status is None:
        return []
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found
