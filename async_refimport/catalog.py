"""The catalog of a journal: each imported reference by name, with where it is in every store.

``refimport catalog`` reads it. For each name, per store: the store's id, Region and account, the
reference's id, ARN and ``omics://`` URIs (the reference's, and its FASTA's as workflows take it,
``…/reference/ID/source``; see :mod:`async_refimport._arns`), the md5 the service reports and the
original source (the manifest's, also when the row was staged into another bucket first).

Built from the journal's rows alone (IMPORTED and ALREADY_PRESENT rows with a reference id), read
through the journal's reader (:func:`read_catalog`), without any AWS call. Four formats
(:class:`CatalogFormat`):

* ``json`` and ``yaml``: one document, ``{"references": {NAME: [ENTRY, ...]}, "conflicts": [...]}``
  (the YAML is written here, every string double-quoted; PyYAML is not needed to write it);
* ``csv``: one line per name and store, cells neutralised as in the CSV report;
* ``nextflow``: a config snippet a pipeline includes (``includeConfig 'refs.config'``): in
  ``params``, ``refimport`` maps each Region to a map from name to the FASTA's URI
  (``params.refimport['us-east-1']['GRCh38']``), and ``refimport_stores`` does the same per
  store id. Maps of string keys, because a config option's name must be an identifier
  (Nextflow's config grammar) and a reference's name often is not (``GRCh38.p14``).

What is ambiguous is said, never hidden: a name that maps to more than one reference in one store
(it should not happen) is a conflict, listed with every reference id; a name held by several
stores of one Region is left out of that Region's Nextflow map (``refimport_stores`` has it);
a row whose role ARN names no account is listed without an ARN or URI. :meth:`Catalog.warnings`
says each in one line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TextIO

from async_refimport._arns import ReferenceAddress, address_of
from async_refimport._models import RowResult, RowState, printable
from async_refimport._report import csv_cell
from async_refimport.journal.base import JournalReader

__all__ = [
    "CSV_FIELDS",
    "Catalog",
    "CatalogBuilder",
    "CatalogEntry",
    "CatalogFormat",
    "NameConflict",
    "build_catalog",
    "groovy_string",
    "read_catalog",
    "render_catalog",
    "write_catalog",
    "yaml_string",
]


class CatalogFormat(StrEnum):
    """The formats ``refimport catalog`` writes."""

    JSON = "json"
    YAML = "yaml"
    NEXTFLOW = "nextflow"
    CSV = "csv"


#: The columns of the CSV catalog, one line per name and store.
CSV_FIELDS = (
    "name",
    "region",
    "store_id",
    "account",
    "reference_id",
    "arn",
    "uri",
    "fasta_uri",
    "md5",
    "original_source",
    "status",
)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One reference in one store.

    Attributes:
        name: The reference's name.
        region: The store's Region.
        store_id: The reference store's id.
        reference_id: The reference's id in the store.
        state: IMPORTED (by one of our jobs) or ALREADY_PRESENT (the store had the name).
        md5: The reference's checksum as the service reports it, when known.
        original_source: Where the FASTA came from: the manifest's source (also when it was
            staged into a bucket of the store's Region first).
        address: Its ARN and URIs; None when its row's role ARN names no account.
    """

    name: str
    region: str
    store_id: str
    reference_id: str
    state: RowState
    md5: str | None
    original_source: str
    address: ReferenceAddress | None

    @classmethod
    def of(cls, result: RowResult) -> CatalogEntry | None:
        """The entry of a journaled row; None unless it is in its store with a reference id."""
        if not result.ok or not result.reference_id:
            return None
        return cls(
            name=result.name,
            region=result.region,
            store_id=result.store_id,
            reference_id=result.reference_id,
            state=result.state,
            md5=result.md5,
            original_source=result.original_source or result.source_file,
            address=address_of(result),
        )

    def merged(self, other: CatalogEntry) -> CatalogEntry:
        """This entry completed by ``other``, a row of the same reference: IMPORTED wins over
        ALREADY_PRESENT, and what this one lacks (md5, address) is taken from ``other``."""
        state = RowState.IMPORTED if RowState.IMPORTED in (self.state, other.state) else self.state
        return replace(
            self,
            state=state,
            md5=self.md5 or other.md5,
            address=self.address or other.address,
        )

    def document(self) -> dict[str, str | None]:
        """The entry as the JSON and YAML catalogs (and each CSV line) have it."""
        address = self.address
        return {
            "region": self.region,
            "store_id": self.store_id,
            "account": address.account.account_id if address else None,
            "reference_id": self.reference_id,
            "arn": address.arn if address else None,
            "uri": address.uri if address else None,
            "fasta_uri": address.fasta_uri if address else None,
            "md5": self.md5,
            "original_source": self.original_source,
            "status": self.state.value,
        }


@dataclass(frozen=True, slots=True)
class NameConflict:
    """A name that maps to more than one reference in one store (it should not happen).

    Attributes:
        name: The name.
        region: The store's Region.
        store_id: The store's id.
        reference_ids: Every reference id journaled for the name in that store, sorted.
    """

    name: str
    region: str
    store_id: str
    reference_ids: tuple[str, ...]

    def document(self) -> dict[str, Any]:
        """The conflict as the JSON and YAML catalogs list it."""
        return {
            "name": self.name,
            "region": self.region,
            "store_id": self.store_id,
            "reference_ids": list(self.reference_ids),
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every imported reference of a journal, sorted by name, Region, store and reference id.

    Attributes:
        entries: One per name, store and reference id.
        conflicts: The names that map to more than one reference in one store.
    """

    entries: tuple[CatalogEntry, ...]
    conflicts: tuple[NameConflict, ...] = ()

    def by_name(self) -> dict[str, list[CatalogEntry]]:
        """The entries of each name, names in order."""
        names: dict[str, list[CatalogEntry]] = {}
        for entry in self.entries:
            names.setdefault(entry.name, []).append(entry)
        return names

    @property
    def without_address(self) -> tuple[CatalogEntry, ...]:
        """The entries listed without an ARN or URI (their role ARN names no account)."""
        return tuple(e for e in self.entries if e.address is None)

    def document(self) -> dict[str, Any]:
        """The JSON and YAML catalog: ``references`` (name -> its entries) and ``conflicts``."""
        return {
            "references": {
                name: [entry.document() for entry in entries]
                for name, entries in self.by_name().items()
            },
            "conflicts": [c.document() for c in self.conflicts],
        }

    def warnings(self) -> list[str]:
        """What a reader of the catalog must know, one line each (printable): the conflicts,
        and the entries listed without an ARN or URI."""
        lines = [
            f"{printable(c.name)!s}: {len(c.reference_ids)} references in store "
            f"{printable(c.store_id)} ({printable(c.region)}): {', '.join(c.reference_ids)}; "
            "each is listed"
            for c in self.conflicts
        ]
        missing = self.without_address
        if missing:
            names = ", ".join(printable(e.name) for e in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            lines.append(
                f"{len(missing)} reference(s) listed without an ARN or URI: their rows' role ARN "
                f"names no account ({names}{more})"
            )
        return [printable(line) for line in lines]


@dataclass(slots=True)
class CatalogBuilder:
    """Builds a :class:`Catalog` from a journal's rows, a page at a time (only the imported
    references are kept: one entry per name, store and reference id)."""

    _entries: dict[tuple[str, str, str, str], CatalogEntry] = field(default_factory=dict)

    def add(self, results: Iterable[RowResult]) -> None:
        """Take more rows (a page of the journal's results); rows not in a store are skipped."""
        for result in results:
            entry = CatalogEntry.of(result)
            if entry is None:
                continue
            key = (entry.name, entry.region, entry.store_id, entry.reference_id)
            known = self._entries.get(key)
            self._entries[key] = entry if known is None else known.merged(entry)

    def build(self) -> Catalog:
        """The catalog of the rows added so far."""
        entries = tuple(self._entries[key] for key in sorted(self._entries))
        per_store: dict[tuple[str, str, str], list[str]] = {}
        for entry in entries:
            per_store.setdefault((entry.name, entry.region, entry.store_id), []).append(
                entry.reference_id
            )
        conflicts = tuple(
            NameConflict(name, region, store_id, tuple(ids))
            for (name, region, store_id), ids in per_store.items()
            if len(ids) > 1
        )
        return Catalog(entries, conflicts)


def build_catalog(results: Iterable[RowResult]) -> Catalog:
    """The catalog of journaled rows.

    Args:
        results: Rows as a journal returns them (any state; only those in a store count).

    Returns:
        The catalog.
    """
    builder = CatalogBuilder()
    builder.add(results)
    return builder.build()


async def read_catalog(journal: JournalReader) -> Catalog:
    """The catalog of an open journal, its rows read a page at a time (read-only).

    Args:
        journal: An open journal (any with the reader role).

    Returns:
        The catalog.

    Raises:
        JournalError: the journal cannot be read.
    """
    builder = CatalogBuilder()
    async for page in journal.iter_results():
        builder.add(page)
    return builder.build()


# -- formats --------------------------------------------------------------------------------------


def render_catalog(catalog: Catalog, fmt: CatalogFormat) -> str:
    """The catalog as text in ``fmt``.

    Args:
        catalog: The catalog.
        fmt: The format.

    Returns:
        The text, ending with a newline.
    """
    out = io.StringIO()
    write_catalog(catalog, fmt, out)
    return out.getvalue()


def write_catalog(catalog: Catalog, fmt: CatalogFormat, out: TextIO) -> None:
    """Write the catalog to ``out`` in ``fmt``.

    Args:
        catalog: The catalog.
        fmt: The format.
        out: Where to write (left open).
    """
    if fmt is CatalogFormat.JSON:
        out.write(json.dumps(catalog.document(), indent=2, ensure_ascii=False) + "\n")
    elif fmt is CatalogFormat.YAML:
        out.write("# refimport catalog: the references of a journal, by name and store\n")
        out.writelines(line + "\n" for line in _yaml_lines(catalog.document(), 0))
    elif fmt is CatalogFormat.CSV:
        _write_csv(catalog, out)
    else:
        out.writelines(line + "\n" for line in _nextflow_lines(catalog))


def _write_csv(catalog: Catalog, out: TextIO) -> None:
    # As the CSV report: our header, then every data cell quoted and never a formula.
    out.write(",".join(CSV_FIELDS) + "\n")
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for entry in catalog.entries:
        row = {"name": entry.name, **entry.document()}
        writer.writerow([csv_cell(row[f]) for f in CSV_FIELDS])


# -- YAML -----------------------------------------------------------------------------------------

# A key written bare: lower-case words of the document's own fields, none of which YAML 1.1 reads
# as a boolean or null. Every other key (a reference's name) is quoted, as every string value is.
_PLAIN_KEY = re.compile(r"[a-z][a-z0-9_]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def yaml_string(value: str) -> str:
    """``value`` as a YAML double-quoted scalar: ``\\`` and ``"`` escaped, and every character
    that is not printable (controls, line separators, a BOM, a lone surrogate) as its escape.

    Args:
        value: Any string.

    Returns:
        The scalar, quotes included; any YAML parser reads ``value`` back.
    """
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'  # the common case, at C speed
    parts = ['"']
    for ch in value:
        if ch in _YAML_ESCAPES:
            parts.append(_YAML_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        elif ord(ch) < 0x100:
            parts.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(f"\\U{ord(ch):08x}")
    parts.append('"')
    return "".join(parts)


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) and key not in _YAML_WORDS else yaml_string(key)


def _yaml_scalar(value: object) -> str | None:
    """``value`` on one line (a scalar, or an empty list or map), or None for a block."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return yaml_string(value)
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return None


def _yaml_lines(value: object, depth: int) -> Iterator[str]:
    """The block lines of a map or a list, indented ``depth`` levels (two spaces each)."""
    pad = "  " * depth
    if isinstance(value, Mapping):
        for key, item in value.items():
            inline = _yaml_scalar(item)
            if inline is not None:
                yield f"{pad}{_yaml_key(key)}: {inline}"
            else:
                yield f"{pad}{_yaml_key(key)}:"
                yield from _yaml_lines(item, depth + 1)
        return
    assert isinstance(value, list), type(value)
    for item in value:
        inline = _yaml_scalar(item)
        if inline is not None:
            yield f"{pad}- {inline}"
            continue
        # A block item: its first line takes the dash, the others keep the item's indent.
        lines = iter(_yaml_lines(item, depth + 1))
        yield f"{pad}- {next(lines)[len(pad) + 2 :]}"
        yield from lines


# -- Nextflow -------------------------------------------------------------------------------------

_GROOVY_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def groovy_string(value: str) -> str:
    """``value`` as a Groovy single-quoted string (no ``$`` interpolation in those): ``\\`` and
    ``'`` escaped, every character that is not printable as ``\\uXXXX`` (UTF-16 units).

    Args:
        value: Any string.

    Returns:
        The literal, quotes included.
    """
    if value.isprintable() and "'" not in value and "\\" not in value:
        return f"'{value}'"  # the common case, at C speed
    parts = ["'"]
    for ch in value:
        if ch in _GROOVY_ESCAPES:
            parts.append(_GROOVY_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        else:
            units = ch.encode("utf-16-be", "surrogatepass")
            parts.extend(
                f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)
            )
    parts.append("'")
    return "".join(parts)


_NEXTFLOW_HEAD = (
    "// refimport catalog: the FASTA of each imported reference as HealthOmics workflows take it",
    "// (omics://ACCOUNT.storage.REGION.amazonaws.com/STORE/reference/ID/source).",
    "// In nextflow.config: includeConfig 'THIS_FILE'; then, in the pipeline,",
    "// params.refimport['REGION']['NAME'], or per store params.refimport_stores['STORE']['NAME'].",
)


def _nextflow_lines(catalog: Catalog) -> Iterator[str]:
    yield from _NEXTFLOW_HEAD
    regions: dict[str, dict[str, list[CatalogEntry]]] = {}
    stores: dict[str, dict[str, list[CatalogEntry]]] = {}
    for entry in catalog.entries:
        regions.setdefault(entry.region, {}).setdefault(entry.name, []).append(entry)
        stores.setdefault(entry.store_id, {}).setdefault(entry.name, []).append(entry)
    yield "params {"
    yield from _groovy_map("refimport", regions, "this Region", "see refimport_stores")
    yield from _groovy_map("refimport_stores", stores, "this store", "a conflict")
    yield "}"


def _groovy_map(
    param: str, groups: Mapping[str, Mapping[str, list[CatalogEntry]]], where: str, why: str
) -> Iterator[str]:
    """``param = [KEY: [NAME: FASTA_URI, ...], ...]``: a name whose URI is not one is left out,
    with a comment before its key's map saying why (``where``: "this Region"; ``why``: what
    to do instead)."""
    if not groups:
        yield f"    {param} = [:]"
        return
    yield f"    {param} = ["
    for key in sorted(groups):
        entries: list[str] = []
        for name, held in sorted(groups[key].items()):
            uris = sorted({e.address.fasta_uri for e in held if e.address is not None})
            if len(uris) == 1:
                entries.append(f"            {groovy_string(name)}: {groovy_string(uris[0])},")
            elif not uris:
                yield (
                    f"        // left out of {groovy_string(key)}: {groovy_string(name)} has no "
                    "URI (its row's role ARN names no account)"
                )
            else:
                ids = ", ".join(sorted({f"{e.store_id}/{e.reference_id}" for e in held}))
                yield (
                    f"        // left out of {groovy_string(key)}: {groovy_string(name)} is "
                    f"{len(uris)} references in {where} ({printable(ids)}): {why}"
                )
        if entries:
            yield f"        {groovy_string(key)}: ["
            yield from entries
            yield "        ],"
        else:
            yield f"        {groovy_string(key)}: [:],"
    yield "    ]"
