"""The seam to Amazon SQS, and to S3 for manifests a message points at (aioboto3).

:class:`SqsClient` is what the SQS intake and the result sender use. Like the HealthOmics gateway it
is the one place that maps botocore's errors for these services onto the error tree:

* throttling, server errors and broken connections become
  :class:`~async_refimport.TransientServiceError` and are retried here (tenacity, botocore's own
  retries off), except ``ReceiveMessage``, whose caller loops anyway;
* a queue that does not exist or may not be used becomes :class:`~async_refimport.QueueError`;
* an S3 object that does not exist or may not be read becomes :class:`ObjectUnavailable`.

Clients come from :class:`~async_refimport.aws.clients.ClientPool`; endpoints from the standard
variables (``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_S3``, or ``AWS_ENDPOINT_URL``), so moto's
server and LocalStack work without a flag.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any

import aiohttp
import anyio
import botocore.exceptions

from async_refimport._errors import (
    CredentialsError,
    QueueError,
    RefImportError,
    TransientServiceError,
)
from async_refimport._retry import RetryPolicy, retrying
from async_refimport.aws.clients import ClientPool, no_retries

RECEIVE = "ReceiveMessage"
DELETE = "DeleteMessage"
CHANGE_VISIBILITY = "ChangeMessageVisibility"
SEND = "SendMessage"
GET_ATTRIBUTES = "GetQueueAttributes"
GET_OBJECT = "GetObject"

#: The SQS limit on one message's body, in bytes.
MAX_MESSAGE_BYTES = 256 * 1024
#: The longest body a received message may have, in characters: what SQS allows since 2025
#: (1 MiB). A longer one is no message a producer of ours sent, and is not parsed.
MAX_RECEIVED_BODY = 1024 * 1024
#: How deeply a received body's JSON may nest: a request needs 4 levels, an event 3; 100,000
#: nested brackets must be refused before a JSON parser recurses into them.
MAX_BODY_DEPTH = 32
#: What S3 objects are downloaded by: bounded memory whatever the object's size.
DOWNLOAD_CHUNK = 1024 * 1024
# A JSON string (whose brackets do not nest), or one bracket.
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)

_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9\-.]{1,61}[a-z0-9])/(.+)", re.DOTALL)
# https://sqs.eu-west-1.amazonaws.com/123456789012/name (and the legacy eu-west-1.queue.amazonaws.com)
_QUEUE_REGION = re.compile(
    r"https?://(?:sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|([a-z0-9-]+)\.queue\.amazonaws\.com)/"
)
_TRANSIENT_CODES = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "SlowDown",
        "KmsThrottled",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
_MISSING_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)
_CREDENTIAL_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.ProfileNotFound,
    botocore.exceptions.TokenRetrievalError,
    botocore.exceptions.NoRegionError,
)


class ObjectUnavailable(RefImportError):
    """An S3 object a message points at does not exist or may not be read.

    Attributes:
        uri: The ``s3://`` URI.
        code: The service's error code (``NoSuchKey``, ``NoSuchBucket``, ``AccessDenied`` ...).
    """

    def __init__(self, message: str, *, uri: str, code: str) -> None:
        super().__init__(message)
        self.uri = uri
        self.code = code


@dataclass(frozen=True, slots=True)
class Message:
    """One received SQS message.

    Attributes:
        message_id: The id SQS gave it when it was sent (stable across redeliveries).
        receipt_handle: The handle of this delivery (to delete it or extend its visibility).
        body: The message body.
        receive_count: How many times SQS has delivered it, this time included.
    """

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


def queue_region(queue_url: str) -> str | None:
    """The Region an AWS queue URL names.

    Args:
        queue_url: The queue's URL.

    Returns:
        The Region, or ``None`` for other endpoints (moto, LocalStack).
    """
    match = _QUEUE_REGION.match(queue_url)
    return (match.group(1) or match.group(2)) if match else None


def body_problem(
    body: str, *, max_chars: int = MAX_RECEIVED_BODY, max_depth: int = MAX_BODY_DEPTH
) -> str | None:
    """Why a received body is not even to be parsed as JSON, or None: the bounds checked before
    a JSON parser sees it, so no body (of any queue) costs more than a linear scan.

    Args:
        body: The message's body.
        max_chars: The longest body accepted.
        max_depth: The deepest nesting of arrays and objects accepted.

    Returns:
        ``"larger than ..."`` or ``"nested deeper than ..."``; None when within both bounds.
    """
    if len(body) > max_chars:
        return f"larger than {max_chars} characters"
    depth = 0
    for match in _JSON_NESTING.finditer(body):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
        elif token in "]}":
            depth -= 1
    return None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``.

    Args:
        uri: The URI.

    Returns:
        The bucket and the key.

    Raises:
        ValueError: not an ``s3://bucket/key`` URI.
    """
    match = _S3_URI.fullmatch(uri)
    if match is None:
        raise ValueError("must be an s3://bucket/key URI")
    return match.group(1), match.group(2)


def classify(error: BaseException, operation: str, resource: str) -> RefImportError | None:
    """Map a botocore/aiohttp exception onto the error tree; None if it is none of ours.

    Args:
        error: What the call raised.
        operation: The API operation (``ReceiveMessage`` ...).
        resource: The queue URL or ``s3://`` URI concerned (named in the error).

    Returns:
        The mapped error (``error`` itself if it is one of ours), or ``None``.
    """
    if isinstance(error, RefImportError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("QueryErrorCode") or err.get("Code") or "Unknown")
        raw_code = str(err.get("Code") or code)
        message = str(err.get("Message", "") or error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) or None
        if code in _TRANSIENT_CODES or raw_code in _TRANSIENT_CODES or (status or 0) >= 500:
            return TransientServiceError(
                message, code=code, operation=operation, status=status, ambiguous=True
            )
        if operation == GET_OBJECT:
            return ObjectUnavailable(f"{resource}: {code}: {message}", uri=resource, code=code)
        if code in _MISSING_QUEUE_CODES or raw_code in _MISSING_QUEUE_CODES:
            return QueueError(
                f"queue {resource} does not exist", queue_url=resource, code="QueueDoesNotExist"
            )
        return QueueError(f"queue {resource}: {code}: {message}", queue_url=resource, code=code)
    if isinstance(error, _CONNECTION_ERRORS):
        return TransientServiceError(
            f"{resource}: {error or type(error).__name__}",
            code=type(error).__name__,
            operation=operation,
            ambiguous=True,
        )
    if isinstance(error, _CREDENTIAL_ERRORS):
        return CredentialsError(str(error), code=type(error).__name__, operation=operation)
    if isinstance(error, botocore.exceptions.BotoCoreError):
        # A malformed queue URL, a bad parameter: nothing a retry can fix.
        return QueueError(
            f"queue {resource}: {error}", queue_url=resource, code=type(error).__name__
        )
    return None


class SqsClient:
    """SQS queues and S3 objects over aioboto3; clients are made on first use by a
    :class:`~async_refimport.aws.clients.ClientPool`.

    Args:
        region: The Region of the queues and buckets (default: the AWS configuration).
        profile: The AWS profile (default: the standard credentials chain).
        retry: Backoff for the calls that are safe to repeat (every one but ReceiveMessage).
        sleep: Async sleep used by backoff (injectable).
        pool: The clients' pool, shared with other AWS callers (default: a pool of its own,
            closed with this client; a given pool is its owner's to close).
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        retry: RetryPolicy = RetryPolicy(attempts=5, max_elapsed=60.0),
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        pool: ClientPool | None = None,
    ) -> None:
        self._region = region
        self._profile = profile
        self._retry = retry
        self._sleep = sleep
        self._own_pool = pool is None
        self._pool = pool or ClientPool()
        # A long poll holds the request for up to 20 s before answering.
        self._config = no_retries(connect_timeout=10, read_timeout=60)

    async def __aenter__(self) -> SqsClient:
        """Enter the client (nothing to open: clients are made on first use).

        Returns:
            The client.
        """
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client (:meth:`aclose`)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections, bounded (a stuck one never hangs a shutdown); a pool given
        by the caller is left open."""
        if self._own_pool:
            await self._pool.aclose()

    async def _client(self, service: str, region: str | None = None) -> Any:
        # A queue is reached in its own Region (its URL says which), whatever the worker's.
        return await self._pool.client(
            service, region=region or self._region, profile=self._profile, config=self._config
        )

    async def _call(
        self,
        service: str,
        operation: str,
        resource: str,
        call: Callable[[Any], Awaitable[dict[str, Any]]],
        *,
        retried: bool = True,
    ) -> dict[str, Any]:
        region = queue_region(resource) if service == "sqs" else None

        async def once() -> dict[str, Any]:
            try:
                client = await self._client(service, region)
                return await call(client)
            except Exception as exc:
                mapped = classify(exc, operation, resource)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc

        if not retried:
            return await once()
        async for attempt in retrying(self._retry, sleep=self._sleep):
            with attempt:
                return await once()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    # -- queues ---------------------------------------------------------------------------------

    async def queue_attributes(self, queue_url: str) -> dict[str, str]:
        """The queue's attributes; the check that it exists and may be used (retried).

        Args:
            queue_url: The queue.

        Returns:
            Its attributes, by name.

        Raises:
            QueueError: the queue does not exist or may not be used.
            TransientServiceError: SQS could not be reached.
        """

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["All"]
            )
            return response

        response = await self._call("sqs", GET_ATTRIBUTES, queue_url, call)
        return {str(k): str(v) for k, v in response.get("Attributes", {}).items()}

    async def receive(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[Message]:
        """One long poll (not retried here: the intake's loop is the retry).

        Args:
            queue_url: The queue.
            max_messages: At most this many messages (SQS allows 10).
            wait_time: Seconds the poll may wait for a message.
            visibility_timeout: Seconds the messages received are hidden from others.

        Returns:
            The messages received (none when the wait ran out).

        Raises:
            QueueError: the queue does not exist or may not be used.
            TransientServiceError: SQS could not be reached.
        """

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_time,
                VisibilityTimeout=visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            return response

        response = await self._call("sqs", RECEIVE, queue_url, call, retried=False)
        return [
            Message(
                message_id=str(m["MessageId"]),
                receipt_handle=str(m["ReceiptHandle"]),
                body=str(m.get("Body", "")),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in response.get("Messages", [])
        ]

    async def set_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        """Hide a received message ``seconds`` longer from now (0: hand it back at once).

        Retried: setting the same visibility twice is harmless.

        Args:
            queue_url: The queue.
            receipt_handle: The handle of the delivery.
            seconds: The new visibility timeout.

        Raises:
            QueueError: the queue does not exist or may not be used.
            TransientServiceError: SQS could not be reached, retries ran out.
        """

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
            return response

        await self._call("sqs", CHANGE_VISIBILITY, queue_url, call)

    async def delete(self, queue_url: str, receipt_handle: str) -> None:
        """Delete a received message (retried: deleting twice is harmless).

        Args:
            queue_url: The queue.
            receipt_handle: The handle of the delivery.

        Raises:
            QueueError: the queue does not exist or may not be used.
            TransientServiceError: SQS could not be reached, retries ran out.
        """

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.delete_message(
                QueueUrl=queue_url, ReceiptHandle=receipt_handle
            )
            return response

        await self._call("sqs", DELETE, queue_url, call)

    async def send(self, queue_url: str, body: str, *, dedup_id: str | None = None) -> str:
        """Send one message (retried: on a FIFO queue SQS drops the copies of a retry).

        On a FIFO queue (``.fifo``) ``dedup_id`` is its deduplication id (and message group), so
        SQS itself drops a second copy sent within its five-minute window.

        Args:
            queue_url: The queue.
            body: The message body.
            dedup_id: The deduplication id on a FIFO queue (ignored on others).

        Returns:
            The MessageId SQS gave it.

        Raises:
            QueueError: the queue does not exist or may not be used.
            TransientServiceError: SQS could not be reached, retries ran out.
        """
        extra: dict[str, str] = {}
        if queue_url.endswith(".fifo") and dedup_id is not None:
            extra = {"MessageGroupId": dedup_id[:128], "MessageDeduplicationId": dedup_id[:128]}

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.send_message(
                QueueUrl=queue_url, MessageBody=body, **extra
            )
            return response

        response = await self._call("sqs", SEND, queue_url, call)
        return str(response.get("MessageId", ""))

    # -- S3 -------------------------------------------------------------------------------------

    async def read_object(self, uri: str, *, max_bytes: int) -> bytes:
        """The bytes of ``s3://bucket/key`` (retried on transient failures).

        Args:
            uri: The object's URI.
            max_bytes: Objects larger than this are refused before they are read.

        Returns:
            The object's bytes.

        Raises:
            ObjectUnavailable: no such bucket or key, access denied, or larger than ``max_bytes``.
            TransientServiceError: S3 could not be reached.
        """
        try:
            bucket, key = split_s3_uri(uri)
        except ValueError as exc:
            raise ObjectUnavailable(f"{uri}: {exc}", uri=uri, code="InvalidURI") from exc

        async def call(client: Any) -> dict[str, Any]:
            response: dict[str, Any] = await client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            async with body as stream:
                size = int(response.get("ContentLength") or 0)
                if size > max_bytes:
                    raise ObjectUnavailable(
                        f"{uri}: {size} bytes, more than the {max_bytes} a manifest may have",
                        uri=uri,
                        code="TooLarge",
                    )
                data = await stream.read()
            return {"data": data}

        response = await self._call("s3", GET_OBJECT, uri, call)
        data: bytes = response["data"]
        return data

    async def download_object(self, uri: str, dest: IO[bytes], *, max_bytes: int) -> int:
        """Copy ``s3://bucket/key`` into ``dest`` a chunk at a time (memory bounded by
        :data:`DOWNLOAD_CHUNK`, whatever the object's size); retried on transient failures, each
        attempt from the start of ``dest``.

        Args:
            uri: The object's URI.
            dest: A binary file open for writing (a temporary file); left at its end.
            max_bytes: Objects larger than this are refused, before or while they are read.

        Returns:
            The object's size in bytes.

        Raises:
            ObjectUnavailable: no such bucket or key, access denied, or larger than ``max_bytes``.
            TransientServiceError: S3 could not be reached.
        """
        try:
            bucket, key = split_s3_uri(uri)
        except ValueError as exc:
            raise ObjectUnavailable(f"{uri}: {exc}", uri=uri, code="InvalidURI") from exc

        def too_large(size: int) -> ObjectUnavailable:
            return ObjectUnavailable(
                f"{uri}: {size} bytes, more than the {max_bytes} a manifest may have",
                uri=uri,
                code="TooLarge",
            )

        async def call(client: Any) -> dict[str, Any]:
            dest.seek(0)
            dest.truncate()
            response: dict[str, Any] = await client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            # Entered for the connection's release; read through the StreamingBody, whose read
            # takes a size (what entering gives does not).
            async with body:
                if int(response.get("ContentLength") or 0) > max_bytes:
                    raise too_large(int(response["ContentLength"]))
                size = 0
                while chunk := await body.read(DOWNLOAD_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:  # a length not told, or not the one told
                        raise too_large(size)
                    dest.write(chunk)
            dest.flush()
            return {"size": size}

        response = await self._call("s3", GET_OBJECT, uri, call)
        size: int = response["size"]
        return size
