"""Manifests: CSV, TSV or JSON Lines files listing the reference genomes to import.

:mod:`~async_refimport.manifest.reader` reads and checks whole manifests (a file, standard input
or S3); :mod:`~async_refimport.manifest.rows` turns rows into requests;
:mod:`~async_refimport.manifest.formats` tells the format; :mod:`~async_refimport.manifest.model`
holds what reading gives and takes; :mod:`~async_refimport.manifest.s3` reads an S3 object.
"""

from async_refimport.manifest.formats import FORMATS as FORMATS
from async_refimport.manifest.formats import STDIN as STDIN
from async_refimport.manifest.formats import ManifestFormat as ManifestFormat
from async_refimport.manifest.model import Manifest as Manifest
from async_refimport.manifest.model import ManifestDefaults as ManifestDefaults
from async_refimport.manifest.model import ManifestRow as ManifestRow
from async_refimport.manifest.model import RemoteLimits as RemoteLimits
from async_refimport.manifest.reader import CheckedManifest as CheckedManifest
from async_refimport.manifest.reader import check_manifest as check_manifest
from async_refimport.manifest.reader import check_objects as check_objects
from async_refimport.manifest.reader import format_error as format_error
from async_refimport.manifest.reader import format_errors as format_errors
from async_refimport.manifest.reader import load_manifest as load_manifest
from async_refimport.manifest.reader import parse_manifest as parse_manifest
from async_refimport.manifest.reader import read_manifest as read_manifest
