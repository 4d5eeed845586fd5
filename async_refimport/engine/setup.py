"""A store's first call: telling "fix your set-up" from "fix your data" and from a passing fault.

Before a lane packs a single job it reads the first page of the store's references
(ListReferences). That first call is the one place where a refusal says nothing about the rows:
no credentials, an unknown profile, access denied, no such store, or no answer at all.
:func:`first_page` makes it, and turns such an outcome into a :class:`~async_refimport.SetupError`
that names what to fix, so that the rows stay queued (fixing the set-up and running again imports
them) instead of failing.

"No answer at all" is told from a service that answers slowly by what came back: as long as not
one request to the store was answered (every attempt ended in a refused or timed-out connection),
the first page is given ``setup_timeout`` seconds; a throttle or a 500 is an answer, so a reachable
service under load is waited out however long that takes. The bound covers that first page only:
a page answered means the endpoint works, and a store of 100,000 references (1,000 pages at 5 TPS)
is a big store, not a set-up problem. The rest of a listing, and any later failure in the middle of
a working run, is never a set-up error: lanes retry or pause through them as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from async_refimport._errors import (
    CredentialsError,
    PermanentServiceError,
    ServiceError,
    SetupError,
    SetupKind,
    TransientServiceError,
)
from async_refimport._log import get_logger
from async_refimport._models import StoreRef, redact_url
from async_refimport.aws.clients import default_region
from async_refimport.gateway.base import ExistingReference, OmicsGateway, ReferencePage

__all__ = [
    "default_region",
    "first_listing",
    "first_page",
    "rest_of_listing",
    "setup_error",
    "unreachable",
]

log = get_logger(__name__)

_IAM_ACTIONS = (
    "omics:ListReferences, omics:StartReferenceImportJob, omics:GetReferenceImportJob, "
    "omics:ListReferenceImportJobs, omics:GetReferenceMetadata and iam:PassRole on the service role"
)


def _where(store: StoreRef) -> str:
    return store.endpoint_url or f"the HealthOmics endpoint of {store.region}"


def _profile(store: StoreRef) -> str:
    return f"profile {store.profile!r}" if store.profile else "the default credentials"


def _credentials_problem(error: CredentialsError, store: StoreRef) -> tuple[str, str]:
    """What refused credentials mean, and their fix."""
    if error.code == "ProfileNotFound":
        return (
            f"unknown AWS profile {store.profile!r}",
            f"Name a profile of ~/.aws/config or ~/.aws/credentials (--profile, the "
            f"manifest's profile column, or AWS_PROFILE); {store.profile!r} is in neither.",
        )
    if error.code in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            "no AWS credentials found",
            "Give AWS credentials: AWS_PROFILE (or --profile), AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, `aws sso login`, or an instance or task role.",
        )
    return (
        f"credentials refused: {error.message}",
        f"The credentials of {_profile(store)} were refused ({error.code}): refresh them "
        "(`aws sso login`, new keys) or check that they belong to this account and Region.",
    )


def _no_such_store_fix(store: StoreRef) -> str:
    endpoint = (
        f"; and that {store.endpoint_url} is a HealthOmics endpoint." if store.endpoint_url else "."
    )
    return (
        f"Check the store id, the Region and the account ({_profile(store)}): "
        f"`aws omics list-reference-stores --region {store.region}` lists the stores" + endpoint
    )


def _problem(error: PermanentServiceError, store: StoreRef) -> tuple[SetupKind, str, str]:
    """The kind, message and fix of a permanent refusal of a store's first call."""
    code, message = error.code, error.message
    if isinstance(error, CredentialsError):
        return (SetupKind.CREDENTIALS, *_credentials_problem(error, store))
    if code in ("AccessDeniedException", "AccessDenied") or error.status == 403:
        fix = f"Grant the caller ({_profile(store)}) {_IAM_ACTIONS}."
        return SetupKind.ACCESS, f"access denied: {message}", fix
    if code == "ResourceNotFoundException" or error.status == 404:
        return SetupKind.STORE, f"no such reference store: {message}", _no_such_store_fix(store)
    return (
        SetupKind.SERVICE,
        f"the store refused its first call: {code}: {message}",
        "Check the store id, Region, profile and endpoint of these rows.",
    )


def setup_error(error: PermanentServiceError, store: StoreRef) -> SetupError:
    """The set-up problem a permanent refusal of a store's first call means, with its fix.

    Args:
        error: The refusal (the gateway's mapping of the service's answer).
        store: The store whose first call it was.

    Returns:
        The error to raise, its ``cause`` the refusal.
    """
    kind, message, fix = _problem(error, store)
    return SetupError(
        redact_url(message),
        store_id=store.store_id,
        region=store.region,
        kind=kind,
        fix=redact_url(fix),
        cause=error,
    )


def unreachable(store: StoreRef, waited: float, last: ServiceError | None) -> SetupError:
    """The set-up error of a store whose first call was never answered within ``waited`` s."""
    detail = f" (last: {last.code}: {last.message})" if last is not None else ""
    return SetupError(
        redact_url(f"no answer from {_where(store)} in {waited:.0f} s{detail}"),
        store_id=store.store_id,
        region=store.region,
        kind=SetupKind.ENDPOINT,
        fix=(
            "Check --endpoint-url (or AWS_ENDPOINT_URL_OMICS), the Region, and any proxy or VPC "
            "endpoint between here and the service."
        ),
        cause=last,
    )


async def first_page(
    gateway: OmicsGateway,
    store: StoreRef,
    *,
    setup_timeout: float,
    retry_wait: float,
    answered: Callable[[StoreRef], bool],
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    clock: Callable[[], float] | None = None,
) -> ReferencePage:
    """Read the first page of the store's references as its first call, or raise the set-up
    problem.

    Args:
        gateway: The HealthOmics seam (its calls retry transient errors themselves).
        store: The store.
        setup_timeout: Seconds the first page may go without any answer before the endpoint
            counts as unreachable.
        retry_wait: Seconds between tries when the gateway's own retries ran out on a service
            that does answer (throttled, failing with 500s).
        answered: Whether any request to the store got an answer so far (its retries included).
        sleep: Async sleep (injectable).
        clock: Monotonic seconds (injectable); anyio's clock by default.

    Returns:
        The first page (its ``next_token`` says whether the store holds more).

    Raises:
        SetupError: credentials, access, store or endpoint are wrong; nothing was sent.
    """
    now = clock or anyio.current_time
    began = now()
    last: ServiceError | None = None
    heard = False

    def reached() -> bool:
        return heard or answered(store)

    while True:
        left = setup_timeout - (now() - began)
        try:
            with anyio.fail_after(None if reached() else left):
                return await gateway.list_references_page(store)
        except PermanentServiceError as exc:
            raise setup_error(exc, store) from exc
        except TransientServiceError as exc:
            # A throttle or a 5xx is an answer: the service is there, only busy.
            heard = heard or exc.status is not None
            last = exc
            log.warning("store.list_failed", store_id=store.store_id, error=str(exc))
        except TimeoutError:
            pass
        waited = now() - began
        if reached():
            await sleep(retry_wait)
        elif waited >= setup_timeout:
            raise unreachable(store, waited, last) from last
        else:
            await sleep(min(retry_wait, setup_timeout - waited))


async def rest_of_listing(
    gateway: OmicsGateway,
    store: StoreRef,
    page: ReferencePage,
    *,
    wait: float,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> list[ExistingReference]:
    """Every reference of the store, from its first page on: the pages after it are read
    without any set-up bound (the endpoint answered), each retried after ``wait`` while
    the service answers with throttles or 5xx.

    Args:
        gateway: The HealthOmics seam.
        store: The store.
        page: The first page (:func:`first_page`).
        wait: Seconds between tries of a page whose gateway retries ran out.
        sleep: Async sleep (injectable).

    Returns:
        The references of every page.

    Raises:
        PermanentServiceError: a page was refused for good.
    """
    refs = list(page.references)
    while page.next_token is not None:
        try:
            page = await gateway.list_references_page(store, page.next_token)
        except TransientServiceError as exc:
            log.warning("store.list_failed", store_id=store.store_id, error=str(exc))
            await sleep(wait)
            continue
        refs.extend(page.references)
    return refs


async def first_listing(
    gateway: OmicsGateway,
    store: StoreRef,
    *,
    setup_timeout: float,
    retry_wait: float,
    answered: Callable[[StoreRef], bool],
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    clock: Callable[[], float] | None = None,
) -> list[ExistingReference]:
    """List every reference of the store, its first page the set-up check (:func:`first_page`;
    the bound covers that page only), then :func:`rest_of_listing`.

    Args:
        gateway: The HealthOmics seam (its calls retry transient errors themselves).
        store: The store.
        setup_timeout: Seconds the first page may go without any answer.
        retry_wait: Seconds between tries when the gateway's own retries ran out.
        answered: Whether any request to the store got an answer so far.
        sleep: Async sleep (injectable).
        clock: Monotonic seconds (injectable); anyio's clock by default.

    Returns:
        The store's references.

    Raises:
        SetupError: credentials, access, store or endpoint are wrong; nothing was sent.
        PermanentServiceError: a later page was refused for good.
    """
    page = await first_page(
        gateway,
        store,
        setup_timeout=setup_timeout,
        retry_wait=retry_wait,
        answered=answered,
        sleep=sleep,
        clock=clock,
    )
    return await rest_of_listing(gateway, store, page, wait=retry_wait, sleep=sleep)
