"""FASTA: synthetic test data, gzip/BGZF packing, and the streaming check the emulator runs on sources."""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass, field

__all__ = ["FastaError", "FastaScanner", "bgzip", "gzip_bytes", "make_fasta"]

# IUPAC nucleotide codes plus gap; sequences are checked case-insensitively.
_ALPHABET = frozenset(b"ACGTURYKMSWBDHVNacgturykmswbdhvn-")

# An empty BGZF block: the end-of-file marker samtools/htslib write.
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# Uncompressed bytes per BGZF block; leaves room for incompressible data within 64 KiB.
_BGZF_BLOCK = 0xFF00


def make_fasta(name: str, length: int, seed: int = 0, *, line_width: int = 60) -> str:
    """Return one synthetic FASTA record of ``length`` random bases (deterministic per ``seed``).

    Args:
        name: the sequence name written after ``>``.
        length: number of bases.
        seed: seed of the base generator, so equal arguments give equal text.
        line_width: bases per sequence line.
    """
    rng = random.Random(seed)
    seq = "".join(rng.choices("ACGT", k=length))
    lines = [f">{name}"]
    lines += [seq[i : i + line_width] for i in range(0, length, line_width)]
    return "\n".join(lines) + "\n"


def gzip_bytes(data: str | bytes) -> bytes:
    """Compress ``data`` as one plain gzip member."""
    raw = data.encode() if isinstance(data, str) else data
    return gzip.compress(raw, mtime=0)


def bgzip(data: str | bytes) -> bytes:
    """Compress ``data`` as BGZF (blocked gzip, as ``bgzip`` writes), ending with the EOF block."""
    raw = data.encode() if isinstance(data, str) else data
    out = bytearray()
    for start in range(0, len(raw), _BGZF_BLOCK):
        chunk = raw[start : start + _BGZF_BLOCK]
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        cdata = comp.compress(chunk) + comp.flush()
        bsize = 18 + len(cdata) + 8  # header with the BC extra field, data, CRC32 and ISIZE
        out += b"\x1f\x8b\x08\x04" + b"\x00\x00\x00\x00" + b"\x00\xff"
        out += struct.pack("<HBBHH", 6, ord("B"), ord("C"), 2, bsize - 1)
        out += cdata
        out += struct.pack("<II", zlib.crc32(chunk) & 0xFFFFFFFF, len(chunk) & 0xFFFFFFFF)
    out += _BGZF_EOF
    return bytes(out)


class FastaError(ValueError):
    """The bytes are not a valid FASTA file (plain, gzip or BGZF)."""


@dataclass
class FastaScanner:
    """Streaming FASTA check: feed raw (possibly gzip/BGZF) chunks, then call :meth:`finish`.

    Checks that the first record starts with ``>``, that sequence lines use the IUPAC nucleotide
    alphabet, and that sequence names (first word of a header) are unique. Computes the md5 of
    the uppercased sequence letters of all records in order, and counts bases.
    """

    bases: int = 0
    names: list[str] = field(default_factory=list)
    compressed: bool | None = None
    _md5: hashlib._Hash = field(default_factory=hashlib.md5)
    _seen: set[str] = field(default_factory=set)
    _pending: bytes = b""
    _line_no: int = 0
    _inflater: zlib._Decompress | None = None
    _head: bytes = b""
    _member_open: bool = False

    def feed(self, chunk: bytes) -> None:
        """Consume the next bytes of the file."""
        if self.compressed is None:
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = self._head, b""
            self.compressed = chunk[:2] == b"\x1f\x8b"
            if self.compressed:
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        if self.compressed:
            self._text(self._inflate(chunk))
        else:
            self._text(chunk)

    def _inflate(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            assert self._inflater is not None
            self._member_open = True
            try:
                out += self._inflater.decompress(data)
            except zlib.error as exc:
                raise FastaError(f"not a valid gzip/BGZF file ({exc})") from None
            if self._inflater.eof:
                # gzip and BGZF files are series of members; start over on the next one.
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
                self._member_open = False
            else:
                data = b""
        return bytes(out)

    def _text(self, data: bytes) -> None:
        data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        self._line_no += 1
        line = line.rstrip(b"\r")
        if not line:
            return
        if line[:1] == b">":
            name = (
                line[1:].split(maxsplit=1)[0].decode("utf-8", "replace") if line[1:].strip() else ""
            )
            if not name:
                raise FastaError(f"line {self._line_no}: FASTA header without a sequence name")
            if name in self._seen:
                raise FastaError(f"duplicate sequence name {name!r} (line {self._line_no})")
            self._seen.add(name)
            self.names.append(name)
            return
        if not self.names:
            raise FastaError("not FASTA: the first record does not start with '>'")
        bad = set(line) - _ALPHABET
        if bad:
            ch = chr(min(bad))
            raise FastaError(
                f"line {self._line_no}: invalid sequence character {ch!r} in record {self.names[-1]!r}"
            )
        self.bases += len(line)
        self._md5.update(line.upper())

    def finish(self) -> None:
        """Flush the last line and check the file held at least one record."""
        if self._head:
            self.compressed = False
            self._text(self._head)
            self._head = b""
        if self.compressed and self._member_open:
            raise FastaError("truncated gzip/BGZF file")
        if self._pending:
            line, self._pending = self._pending, b""
            self._line(line)
        if not self.names:
            raise FastaError("not FASTA: no records found")

    @property
    def md5(self) -> str:
        """Hex md5 of the uppercased sequence letters."""
        return self._md5.hexdigest()
