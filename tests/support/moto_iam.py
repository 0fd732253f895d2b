"""What moto 5.2.5's IAM enforcement says differently from AWS, mended where a client reads it.

moto answers every denied request with a query-protocol XML error (`<Code>AccessDenied</Code>`),
also to the JSON and CBOR protocols of SageMaker, SSM, SQS and CloudWatch, whose clients then
read the code as "403" and the whole XML document as the message; and it names an action after
the request's signing name (`monitoring:PutMetricData`, where IAM says `cloudwatch:`). AWS
answers in the protocol of the request, naming the IAM action. `read_access_denied_as_aws_words_it`
makes a client parse moto's answer into the error AWS would give it: code `AccessDenied`, message
`User: <arn> is not authorized to perform: <service>:<Action>`.
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import unescape

from local_pipeline.iam import MOTO_ACTION_PREFIXES

_MOTO_ERROR = re.compile(rb"<ErrorResponse>.*?<Code>([^<]+)</Code><Message>([^<]*)</Message>", re.DOTALL)
_IAM_PREFIXES = {moto_prefix: iam_prefix for iam_prefix, moto_prefix in MOTO_ACTION_PREFIXES.items()}
# Protocols whose parsers read moto's XML error correctly.
_XML_PROTOCOLS = frozenset({"query", "ec2", "rest-xml"})


def read_access_denied_as_aws_words_it(client: Any) -> None:
    client.meta.events.register("before-parse", _reword_moto_access_denied)


def _reword_moto_access_denied(operation_model: Any, response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    if response_dict.get("status_code") != 403 or operation_model.service_model.resolved_protocol in _XML_PROTOCOLS:
        return
    match = _MOTO_ERROR.search(response_dict.get("body") or b"")
    if not match:
        return
    message = re.sub(r"perform: ([a-z0-9-]+):",
                     lambda found: f"perform: {_IAM_PREFIXES.get(found.group(1), found.group(1))}:",
                     unescape(match.group(2).decode()))
    # Replaces what the protocol's parser makes of the body.
    customized_response_dict["Error"] = {"Code": match.group(1).decode(), "Message": message}
