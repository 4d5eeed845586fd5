"""Who a caller is to the emulator, and the environment that makes a process that caller.

The emulator, like AWS, tells accounts apart by the access key id a request is signed with
(:func:`account_for`). :meth:`Emulator.client_kwargs` hands out one key; code that reads its
credentials from the environment (an ``Importer``, ``refimport import``, the AWS CLI) signs
with whatever key the environment holds, which is another account, where the stores made with
``client_kwargs()`` do not exist. :func:`environ` and :class:`EnvironmentPatch` put the
emulator's own key, Region and endpoints in the environment, so every client of the process
(or of a child process) is the same caller as ``client_kwargs()``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Self

from ._sts import temporary_key_account

#: Dummy credentials handed out by :meth:`Emulator.client_kwargs` and :func:`environ`.
ACCESS_KEY_ID = "AKIAEMULATOR00000000"
SECRET_ACCESS_KEY = "emulator-secret"

#: Variables that would make the SDK pick other credentials than the emulator's (a profile takes
#: precedence over the key in the environment; a session token belongs to another key).
CONFLICTING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def account_for(access_key_id: str) -> str:
    """Derive the 12-digit account id the emulator assigns to an access key id.

    A key id that is itself 12 digits is used as is (handy to pick an account in tests); the
    temporary credentials of a role assumed through the emulator's STS are the role's account
    (:func:`~._sts.temporary_key_account`); any other key maps to ``int(sha256(key)) mod
    10**12``, zero-padded, so distinct keys behave as distinct accounts with their own store quota.
    """
    if access_key_id.isdigit() and len(access_key_id) == 12:
        return access_key_id
    assumed = temporary_key_account(access_key_id)
    if assumed is not None:
        return assumed
    digest = int(hashlib.sha256(access_key_id.encode()).hexdigest(), 16)
    return f"{digest % 10**12:012d}"


def environ(endpoints: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment in which the AWS SDK talks to an emulator as ``client_kwargs()`` does.

    ``base`` (default: a copy of ``os.environ``) with the emulator's access key and secret, its
    Region (``AWS_REGION``, ``AWS_DEFAULT_REGION``), its endpoints (``AWS_ENDPOINT_URL_OMICS``,
    ``AWS_ENDPOINT_URL_STS`` (the same server), ``AWS_ENDPOINT_URL_S3``, and ``AWS_ENDPOINT_URL_EVENTBRIDGE`` / ``_SQS`` when it
    publishes events) and ``AWS_DISABLE_HOST_PREFIX_INJECTION=true`` set, and the variables that would pick
    other credentials (``AWS_PROFILE``, ``AWS_SESSION_TOKEN``, ...) removed. Hand it to a child
    process (``subprocess.run(..., env=emu.environ())``) or apply it to this process with
    :meth:`Emulator.configure_environment`.

    Args:
        endpoints: The emulator's endpoint JSON (:meth:`Emulator.endpoints`, or the line
            ``refimport emulator`` prints).
        base: The environment to start from; ``{}`` gives the emulator's variables alone.
    """
    env = dict(os.environ if base is None else base)
    for name in CONFLICTING:
        env.pop(name, None)
    env.update(_variables(endpoints))
    return env


def _variables(endpoints: Mapping[str, str]) -> dict[str, str]:
    out = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": endpoints["region"],
        "AWS_DEFAULT_REGION": endpoints["region"],
        "AWS_ENDPOINT_URL_OMICS": endpoints["omics_endpoint_url"],
        # The emulator answers STS's AssumeRole too: profiles that assume a role work.
        "AWS_ENDPOINT_URL_STS": endpoints["omics_endpoint_url"],
        "AWS_ENDPOINT_URL_S3": endpoints["s3_endpoint_url"],
        # botocore prefixes the omics host with "control-storage-", even for a configured
        # endpoint; the emulator has no such host. Read by recent botocore and the AWS CLI.
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
    }
    events = endpoints.get("events_endpoint_url")
    if events:
        # The service id botocore derives the variable from is "EventBridge" (of the "events"
        # client): AWS_ENDPOINT_URL_EVENTS is read by nothing.
        out["AWS_ENDPOINT_URL_EVENTBRIDGE"] = events
        out["AWS_ENDPOINT_URL_SQS"] = events
    return out


class EnvironmentPatch:
    """The emulator's variables applied to ``os.environ``; :meth:`restore` puts back what was.

    Made by :meth:`Emulator.configure_environment`. Applying happens on creation, so a plain
    call configures the process for good; used as a context manager (``with
    emu.configure_environment():``) the earlier environment is restored on leaving.
    """

    def __init__(self, endpoints: Mapping[str, str]) -> None:
        wanted = environ(endpoints, base={})
        names = set(wanted) | set(CONFLICTING)
        #: Each variable touched, with its value before (None: it was not set).
        self.saved: dict[str, str | None] = {name: os.environ.get(name) for name in names}
        for name in CONFLICTING:
            os.environ.pop(name, None)
        os.environ.update(wanted)
        self._restored = False

    def restore(self) -> None:
        """Put back every variable as it was before (once; later calls do nothing)."""
        if self._restored:
            return
        self._restored = True
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()
