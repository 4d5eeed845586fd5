"""Where an imported reference is: its ARN and its ``omics://`` URIs, from a journaled row.

A reference store is one per account and Region, and a row's role is of the store's own account
(HealthOmics takes the role with ``iam:PassRole``, which passes only a role of the caller's
account), so the account of an imported reference is the account of its row's role:

* ARN: ``arn:PARTITION:omics:REGION:ACCOUNT:referenceStore/STORE/reference/ID`` (the partition is
  the role's: ``aws``, ``aws-us-gov`` ...);
* URI: ``omics://ACCOUNT.storage.REGION.amazonaws.com/STORE/reference/ID``, and the FASTA's, as
  workflows take it: that URI followed by ``/source``.

Pure functions: nothing here calls AWS. The reports (``_report``) and the catalog (``catalog``)
both read these, so the two can never disagree about a reference's address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from async_refimport._models import RowResult

# The IAM role ARN the manifest check accepts (its partition and 12-digit account captured).
_ROLE_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):iam::([0-9]{12}):role/\S+")


@dataclass(frozen=True, slots=True)
class Account:
    """The AWS account a role belongs to, with its partition.

    Attributes:
        partition: ``aws``, ``aws-us-gov``, ``aws-cn`` ...
        account_id: The 12-digit account id.
    """

    partition: str
    account_id: str


@dataclass(frozen=True, slots=True)
class ReferenceAddress:
    """An imported reference's ARN and URIs.

    Attributes:
        account: The account of the reference's store.
        arn: ``arn:PARTITION:omics:REGION:ACCOUNT:referenceStore/STORE/reference/ID``.
        uri: ``omics://ACCOUNT.storage.REGION.amazonaws.com/STORE/reference/ID``.
        fasta_uri: The FASTA's URI, as workflows take it: ``uri`` + ``/source``.
    """

    account: Account
    arn: str
    uri: str
    fasta_uri: str


def account_of_role(role_arn: str | None) -> Account | None:
    """The account (and partition) of an IAM role ARN.

    Args:
        role_arn: ``arn:aws:iam::123456789012:role/Name``, or None.

    Returns:
        Its account; None when there is no role or it is not an IAM role ARN (a row journaled
        without one cannot be given an ARN or a URI).
    """
    if role_arn is None:
        return None
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        return None
    return Account(match[1], match[2])


def reference_address(
    account: Account, region: str, store_id: str, reference_id: str
) -> ReferenceAddress:
    """The ARN and URIs of reference ``reference_id`` in store ``store_id``.

    Args:
        account: The store's account.
        region: The store's Region.
        store_id: The reference store's id.
        reference_id: The reference's id in that store.

    Returns:
        Its ARN, its URI and its FASTA's URI.
    """
    arn = (
        f"arn:{account.partition}:omics:{region}:{account.account_id}:"
        f"referenceStore/{store_id}/reference/{reference_id}"
    )
    uri = (
        f"omics://{account.account_id}.storage.{region}.amazonaws.com/"
        f"{store_id}/reference/{reference_id}"
    )
    return ReferenceAddress(account, arn, uri, f"{uri}/source")


def address_of(result: RowResult) -> ReferenceAddress | None:
    """Where a journaled row's reference is, once it is in its store.

    Args:
        result: A row as the journal has it.

    Returns:
        Its reference's ARN and URIs; None when the row is not IMPORTED or ALREADY_PRESENT, has
        no reference id, or its role ARN names no account.
    """
    if not result.ok or not result.reference_id:
        return None
    account = account_of_role(result.role_arn)
    if account is None:
        return None
    return reference_address(account, result.region, result.store_id, result.reference_id)
