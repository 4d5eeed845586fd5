"""A local AWS HealthOmics reference-store emulator.

A real HTTP server speaking the REST-JSON wire format of botocore's ``omics`` model, with
sources read from an embedded moto S3 server. See ``README.md`` in this directory.

    async with Emulator(time_scale=0.001) as emu:
        session = aioboto3.Session()
        async with session.client("omics", **emu.client_kwargs()) as omics:
            ...
"""

from ._fasta import FastaError as FastaError
from ._fasta import FastaScanner as FastaScanner
from ._fasta import bgzip as bgzip
from ._fasta import gzip_bytes as gzip_bytes
from ._fasta import make_fasta as make_fasta
from ._faults import Faults as Faults
from ._model import OPERATIONS as OPERATIONS
from ._model import conformance_problems as conformance_problems
from ._server import Emulator as Emulator
from ._server import account_for as account_for
from ._server import client_kwargs as client_kwargs
from ._service import EMULATED_BASES_META as EMULATED_BASES_META
from ._thread import EmulatorThread as EmulatorThread
from ._unknowns import Unknowns as Unknowns

__all__ = [
    "EMULATED_BASES_META",
    "OPERATIONS",
    "Emulator",
    "EmulatorThread",
    "FastaError",
    "FastaScanner",
    "Faults",
    "Unknowns",
    "account_for",
    "bgzip",
    "client_kwargs",
    "conformance_problems",
    "gzip_bytes",
    "make_fasta",
]
