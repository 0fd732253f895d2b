"""Cross-account requests on moto's server. AWS sends a request to the account that owns the
resource it names (a model package's ARN, a bucket); moto answers every request in the caller's
account (`MOTO_ACCOUNT_ID`, else the `x-moto-account-id` header). `route_to_owner` gives a client
AWS's routing: each request carries the header of the account that owns what it names.
`MOTO_ACCOUNT_ID` must be unset, or it wins over the header."""

from __future__ import annotations

import re
from typing import Any, Mapping

ACCOUNT_HEADER = "x-moto-account-id"
_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")


def owner_of(api_params: Mapping[str, Any], default_account: str, bucket_accounts: Mapping[str, str]) -> str:
    bucket = api_params.get("Bucket")
    if isinstance(bucket, str) and bucket in bucket_accounts:
        return bucket_accounts[bucket]
    for value in api_params.values():
        match = _ARN_ACCOUNT.match(value) if isinstance(value, str) else None
        if match:
            return match.group(1)
    return default_account


def route_to_owner(client: Any, default_account: str, bucket_accounts: Mapping[str, str] | None = None) -> Any:
    """`client`, its requests sent to the account owning the resource they name (else `default_account`)."""
    buckets = bucket_accounts or {}

    def choose(params, context, **_) -> None:
        context["moto_account"] = owner_of(params, default_account, buckets)

    def add_header(params, context, **_) -> None:
        params["headers"][ACCOUNT_HEADER] = context.get("moto_account", default_account)

    client.meta.events.register("before-parameter-build", choose)
    client.meta.events.register("before-call", add_header)
    return client
