"""Reading a manifest from S3 with the caller's credentials."""

from __future__ import annotations

from async_refimport._errors import FieldError, ManifestError
from async_refimport.manifest.formats import split_s3_uri
from async_refimport.manifest.model import ManifestDefaults


async def fetch_s3(uri: str, defaults: ManifestDefaults) -> bytes:
    """The bytes of an S3 object, read with the caller's credentials.

    Args:
        uri: ``s3://bucket/key``.
        defaults: Their ``profile`` and ``region`` are those of the client.

    Returns:
        The object's bytes.

    Raises:
        ManifestError: the object cannot be read (its reason in words a user can act on).
    """
    parts = split_s3_uri(uri)
    if parts is None:
        raise ManifestError([FieldError("file", "not an s3://bucket/key URI", source=uri)])
    bucket, key = parts
    from botocore.exceptions import BotoCoreError, ClientError

    from async_refimport.aws.clients import ClientPool, sdk_retries

    try:
        async with ClientPool() as pool:
            # Without a Region of its own S3 answers from us-east-1 and redirects to the bucket's.
            s3 = await pool.client(
                "s3", region=defaults.region or None, profile=defaults.profile, config=sdk_retries()
            )
            response = await s3.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        reason = {
            "NoSuchKey": "no such object",
            "NoSuchBucket": "no such bucket",
            "AccessDenied": "access denied (check the credentials' s3:GetObject permission)",
            "403": "access denied (check the credentials' s3:GetObject permission)",
            "404": "no such object",
        }.get(code, f"{code}: {error.get('Message', exc)}")
        raise ManifestError(
            [FieldError("file", f"cannot read from S3: {reason}", source=uri)]
        ) from exc
    except BotoCoreError as exc:  # no credentials, unknown profile, endpoint unreachable ...
        raise ManifestError(
            [FieldError("file", f"cannot read from S3: {exc}", source=uri)]
        ) from exc
    return data
