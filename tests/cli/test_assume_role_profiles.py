"""Profiles that assume a role (``role_arn`` + ``source_profile``), per row, against the
emulator's own STS (issue 23): ``refimport import`` as a user runs it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import boto3

from async_refimport.emulator import EmulatorThread
from tests.helpers.cli import ROLE_ARN, Run

Genomes = Callable[[int, str], list[tuple[str, str]]]

SOURCE_KEY = "AKIASOURCEPROFILE000"
# Each role in an account of its own: the emulator's temporary credentials act in the role's.
ROLES = {
    "research": "arn:aws:iam::111111111111:role/ImportResearch",
    "clinical": "arn:aws:iam::222222222222:role/ImportClinical",
}


def account_store(emulator: EmulatorThread, account: str) -> str:
    # A 12-digit access key id is the emulator's account of that number.
    kwargs = {**emulator.client_kwargs(), "region_name": "us-east-1"}
    kwargs.update(aws_access_key_id=account, aws_secret_access_key="x")
    return str(boto3.client("omics", **kwargs).create_reference_store(name="refs")["id"])


def test_role_profiles_import_per_row_sharing_their_source_profiles_credentials(
    emulator: EmulatorThread,
    genomes: Genomes,
    cli: Callable[..., Run],
    journal_path: Path,
    tmp_path: Path,
) -> None:
    Path(os.environ["AWS_CONFIG_FILE"]).write_text(
        "[profile source]\nregion = us-east-1\n\n"
        + "".join(
            f"[profile {name}]\nrole_arn = {arn}\nsource_profile = source\nregion = us-east-1\n\n"
            for name, arn in ROLES.items()
        )
    )
    Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[source]\naws_access_key_id = {SOURCE_KEY}\naws_secret_access_key = not-a-secret\n"
    )
    stores = {name: account_store(emulator, arn.split(":")[4]) for name, arn in ROLES.items()}
    items = genomes(8, "role")
    manifest = tmp_path / "roles.csv"
    lines = ["source_file,name,store_id,profile"]
    for i, (name, uri) in enumerate(items):
        profile = "research" if i % 2 else "clinical"
        lines.append(f"{uri},{name},{stores[profile]},{profile}")
    manifest.write_text("\n".join(lines) + "\n")

    # STS is the emulator's (it serves AssumeRole on the omics port), as a user's would be AWS's.
    run = cli(
        "import", manifest, "--role-arn", ROLE_ARN, "--endpoint-url", emulator.omics_endpoint_url,
        "--journal", journal_path, "--json", "-q",
        env={"AWS_ENDPOINT_URL_STS": emulator.omics_endpoint_url},
    )  # fmt: skip
    assert run.code == 0, run.stderr

    stats = emulator.stats()
    refs = stats["references"]
    for profile, store in stores.items():
        expected = sorted(
            n for i, (n, _) in enumerate(items) if (i % 2 == 1) == (profile == "research")
        )
        assert sorted(r["name"] for r in refs[store]) == expected
    # One AssumeRole per role profile, each signed with the source profile's key: not one per
    # call or per row.
    assumed = stats["sts"]["assume_role"]
    assert sorted(a["role_arn"] for a in assumed) == sorted(ROLES.values())
    assert {a["signed_by"] for a in assumed} == {SOURCE_KEY}
    handed_out = {a["role_arn"]: a["access_key_id"] for a in assumed}
    # Every call to a store signed by its own profile's assumed credentials, none by the source.
    signed_by = stats["sts"]["signed_by"]
    for profile, store in stores.items():
        assert set(signed_by[store]) == {handed_out[ROLES[profile]]}, signed_by
    assert all(SOURCE_KEY not in keys for keys in signed_by.values())
