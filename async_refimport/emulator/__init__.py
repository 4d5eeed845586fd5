"""A local AWS HealthOmics reference-store emulator.

A real HTTP server speaking the REST-JSON wire format of botocore's ``omics`` model, with
sources read from an embedded moto S3 server. See ``README.md`` in this directory.

    async with Emulator(time_scale=0.001) as emu:
        session = aioboto3.Session()
        async with session.client("omics", **emu.client_kwargs()) as omics:
            ...
        emu.configure_environment()  # clients configured from the environment: the same account
"""

from ._environment import ACCESS_KEY_ID as ACCESS_KEY_ID
from ._environment import SECRET_ACCESS_KEY as SECRET_ACCESS_KEY
from ._environment import EnvironmentPatch as EnvironmentPatch
from ._environment import account_for as account_for
from ._environment import environ as environ
from ._extra import MissingExtraError as MissingExtraError
from ._extra import missing_extra_hint as missing_extra_hint
from ._extra import require_extra as require_extra
from ._fasta import FastaError as FastaError
from ._fasta import FastaScanner as FastaScanner
from ._fasta import bgzip as bgzip
from ._fasta import gzip_bytes as gzip_bytes
from ._fasta import make_fasta as make_fasta
from ._faults import Faults as Faults
from ._model import OPERATIONS as OPERATIONS
from ._model import conformance_problems as conformance_problems
from ._server import Emulator as Emulator
from ._server import client_kwargs as client_kwargs
from ._service import EMULATED_BASES_META as EMULATED_BASES_META
from ._thread import EmulatorThread as EmulatorThread
from ._unknowns import Unknowns as Unknowns

__all__ = [
    "ACCESS_KEY_ID",
    "EMULATED_BASES_META",
    "OPERATIONS",
    "SECRET_ACCESS_KEY",
    "Emulator",
    "EmulatorThread",
    "EnvironmentPatch",
    "FastaError",
    "FastaScanner",
    "Faults",
    "MissingExtraError",
    "Unknowns",
    "account_for",
    "bgzip",
    "client_kwargs",
    "conformance_problems",
    "environ",
    "gzip_bytes",
    "make_fasta",
    "missing_extra_hint",
    "require_extra",
]
