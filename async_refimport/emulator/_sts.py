"""A minimal AWS STS on the emulator's HTTP server: ``AssumeRole``, as botocore's assume-role
profiles (``role_arn`` + ``source_profile``) call it, and who signed each omics call.

botocore speaks STS's Query protocol: a form-encoded ``POST /`` (``Action=AssumeRole``,
``Version=2011-06-15``, ``RoleArn``, ``RoleSessionName``, ``DurationSeconds``), SigV4-signed for the
``sts`` service, answered in XML. The emulator serves it on the same port as omics (the SDK
reaches it through ``AWS_ENDPOINT_URL_STS``, which :func:`~._environment.environ` sets).

The temporary credentials it hands out act in the role's account: their access key id is
``ASIA``, the role's 12-digit account and a serial (:func:`temporary_key_account`), so the omics
calls signed with them see that account's stores. Like the rest of the emulator, signatures are
required but not verified. Recorded for tests (``stats()["sts"]``): every AssumeRole (which role,
signed by which key, the key it handed out) and, per store, the access key ids its omics calls
were signed with.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from aiohttp import web

__all__ = ["TEMPORARY_KEY_PREFIX", "Sts", "temporary_key_account"]

#: Access key ids of temporary credentials start with this (as AWS's do).
TEMPORARY_KEY_PREFIX = "ASIA"
_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
_VERSION = "2011-06-15"
_SCOPE = re.compile(r"Credential=([^/\s,]+)/\d{8}/[^/\s,]+/([^/\s,]+)/aws4_request")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/([\w+=,.@/-]{1,512})$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
# Access key ids refused everything (the emulator's DENIED_KEY_PREFIX, said again here: this
# module imports nothing of the server's).
_DENIED_PREFIX = "AKIADENIED"


def temporary_key_account(access_key_id: str) -> str | None:
    """The account of temporary credentials this STS handed out, from their access key id.

    Args:
        access_key_id: An access key id.

    Returns:
        The role's 12-digit account, or ``None`` for a key of any other form.
    """
    account = access_key_id[len(TEMPORARY_KEY_PREFIX) : len(TEMPORARY_KEY_PREFIX) + 12]
    if access_key_id.startswith(TEMPORARY_KEY_PREFIX) and account.isdigit() and len(account) == 12:
        return account
    return None


class _StsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Sts:
    """The emulator's STS: AssumeRole, and the record of who signed what.

    Args:
        lifetime_cap: The longest lifetime granted, in seconds (``DurationSeconds`` beyond it
            is cut to it; AWS's default for a role is an hour).
    """

    def __init__(self, *, lifetime_cap: float = 3600.0) -> None:
        self._cap = lifetime_cap
        self._serial = 0
        self.assumed: list[dict[str, Any]] = []
        """Every AssumeRole answered: role ARN, session name, the key that signed it, the key
        handed out."""
        self.signed: dict[str, Counter[str]] = {}
        """Per store id, how many omics calls each access key id signed."""

    def reset(self) -> None:
        """Forget what was recorded (credentials handed out stay valid)."""
        self.assumed.clear()
        self.signed.clear()

    @staticmethod
    def handles(request: web.Request) -> bool:
        """Whether ``request`` is for STS (its SigV4 scope names the ``sts`` service).

        Args:
            request: A request to the emulator.

        Returns:
            True for an STS request.
        """
        m = _SCOPE.search(request.headers.get("Authorization", ""))
        return m is not None and m.group(2) == "sts"

    def saw(self, request: web.Request, uri_params: Mapping[str, str]) -> None:
        """Record which access key id signed an omics call (by the store it names, if any).

        Args:
            request: The omics request.
            uri_params: Its path's parameters (``referenceStoreId``).
        """
        m = _SCOPE.search(request.headers.get("Authorization", ""))
        if m is not None:
            store = uri_params.get("referenceStoreId", "")
            self.signed.setdefault(store, Counter())[m.group(1)] += 1

    def stats(self) -> dict[str, Any]:
        """What was recorded, as JSON.

        Returns:
            ``{"assume_role": [...], "signed_by": {store id: {access key id: calls}}}``.
        """
        return {
            "assume_role": [dict(a) for a in self.assumed],
            "signed_by": {store: dict(keys) for store, keys in self.signed.items()},
        }

    async def handle(self, request: web.Request) -> web.Response:
        """Answer an STS request (Query protocol).

        Args:
            request: The request (:meth:`handles` said it is STS's).

        Returns:
            The XML answer, or an STS error document.
        """
        try:
            form = {k: v[-1] for k, v in parse_qs(await request.text()).items()}
            form.update({k: v for k, v in request.query.items() if k not in form})
            if form.get("Version", _VERSION) != _VERSION:
                raise _StsError("InvalidParameterValue", f"Unknown Version {form['Version']!r}")
            action = form.get("Action")
            if action != "AssumeRole":
                raise _StsError("InvalidAction", f"Could not find operation {action!r}")
            signer = self._signer(request)
            return _xml("AssumeRole", self._assume_role(signer, form))
        except _StsError as exc:
            return _error(exc)

    @staticmethod
    def _signer(request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        m = _SCOPE.search(auth)
        if not auth.startswith("AWS4-HMAC-SHA256") or m is None:
            raise _StsError(
                "MissingAuthenticationToken", "Request is missing Authentication Token", 403
            )
        if m.group(1).startswith(_DENIED_PREFIX):
            raise _StsError(
                "AccessDenied", f"{m.group(1)} is not authorized to perform sts:AssumeRole", 403
            )
        return m.group(1)

    def _assume_role(self, signer: str, form: Mapping[str, str]) -> str:
        arn, name = form.get("RoleArn", ""), form.get("RoleSessionName", "")
        role = _ROLE_ARN.match(arn)
        if role is None:
            raise _StsError("ValidationError", f"{arn!r} is not a valid IAM role ARN")
        if _SESSION_NAME.match(name) is None:
            raise _StsError("ValidationError", f"Invalid RoleSessionName {name!r}")
        try:
            seconds = float(form.get("DurationSeconds", "3600"))
        except ValueError:
            raise _StsError("ValidationError", "DurationSeconds must be a number") from None
        if not 900 <= seconds <= 43200:
            raise _StsError("ValidationError", "DurationSeconds must be between 900 and 43200")
        account = role.group(1)
        self._serial += 1
        key = f"{TEMPORARY_KEY_PREFIX}{account}{self._serial:04X}"
        expires = datetime.now(UTC) + timedelta(seconds=min(seconds, self._cap))
        self.assumed.append(
            {"role_arn": arn, "session_name": name, "signed_by": signer, "access_key_id": key}
        )
        role_name = role.group(2).rsplit("/", 1)[-1]
        return (
            "<Credentials>"
            f"<AccessKeyId>{key}</AccessKeyId>"
            f"<SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>"
            f"<SessionToken>{secrets.token_urlsafe(60)}</SessionToken>"
            f"<Expiration>{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
            "</Credentials>"
            "<AssumedRoleUser>"
            f"<AssumedRoleId>AROA{account}EMULATED:{escape(name)}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/{escape(name)}</Arn>"
            "</AssumedRoleUser>"
        )


def _xml(action: str, result: str) -> web.Response:
    body = (
        f'<{action}Response xmlns="{_NAMESPACE}">'
        f"<{action}Result>{result}</{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return web.Response(text=body, content_type="text/xml")


def _error(exc: _StsError) -> web.Response:
    body = (
        f'<ErrorResponse xmlns="{_NAMESPACE}">'
        f"<Error><Type>Sender</Type><Code>{exc.code}</Code>"
        f"<Message>{escape(exc.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    )
    return web.Response(text=body, status=exc.status, content_type="text/xml")
