"""What a file really is, from its bytes, and whether a zip inside it is safe to open."""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path

from mitra.errors import PayloadTooLarge, UnsupportedMediaType

FORMATS = ("xlsx", "xls", "ods", "csv")
_OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")
_ZIP = b"PK\x03\x04"
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_TEXT_PROBE = 65_536


def claimed_format(filename: str) -> str:
    """The format a file's name claims, or 415."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UnsupportedMediaType(
            f"unsupported file type {suffix or '(none)'!r}: upload xlsx, xls, ods or csv"
        )
    return suffix


def sniff(path: Path, claimed: str, *, max_uncompressed: int, max_ratio: float) -> str:
    """Check that `path` holds what its name claims (415 with the reason otherwise) and that a
    zip-based workbook does not expand past the limits (413). Blocking: run it off the loop."""
    with path.open("rb") as handle:
        head = handle.read(_TEXT_PROBE)
    actual = _kind(path, head, max_uncompressed=max_uncompressed, max_ratio=max_ratio)
    if actual != claimed:
        raise UnsupportedMediaType(
            f"the file is named .{claimed} but its content is {_DESCRIPTION[actual]}"
        )
    return actual


_DESCRIPTION = {
    "xlsx": "an Excel workbook (xlsx)",
    "xls": "an Excel 97-2003 workbook (xls)",
    "ods": "an OpenDocument spreadsheet (ods)",
    "csv": "text (csv)",
    "zip": "a zip archive that is no spreadsheet",
    "binary": "binary data that is no spreadsheet",
    "empty": "empty",
}


def _kind(path: Path, head: bytes, *, max_uncompressed: int, max_ratio: float) -> str:
    if not head:
        return "empty"
    if head.startswith(_OLE2):
        return "xls"
    if head.startswith(_ZIP):
        return _zip_kind(path, max_uncompressed=max_uncompressed, max_ratio=max_ratio)
    if b"\x00" in head:
        return "binary"
    return "csv"


def _zip_kind(path: Path, *, max_uncompressed: int, max_ratio: float) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            expanded = sum(member.file_size for member in members)
            if expanded > max_uncompressed:
                raise PayloadTooLarge(
                    f"the workbook would expand to {expanded} bytes, more than {max_uncompressed}"
                )
            for member in members:
                if member.file_size > 1_048_576 and member.file_size > max_ratio * max(
                    member.compress_size, 1
                ):
                    raise PayloadTooLarge(
                        f"the workbook member {member.filename[:100]!r} is compressed more than "
                        f"{max_ratio:g} to 1: refused as a zip bomb"
                    )
            names = {member.filename for member in members}
            if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
                return "xlsx"
            if "mimetype" in names and archive.read("mimetype").strip() == _ODS_MIME:
                return "ods"
    except zipfile.BadZipFile:
        return "binary"
    return "zip"


def csv_encoding(path: Path) -> str:
    """UTF-8 (with or without a BOM) when the whole file decodes as it, else Windows-1252, the
    encoding Excel on Windows saves "CSV" in. Blocking: run it off the loop."""
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            return "utf-8-sig"
        handle.seek(0)
        decoder_ok = True
        decoder = codecs.getincrementaldecoder("utf-8")()
        while chunk := handle.read(1_048_576):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                decoder_ok = False
                break
        if decoder_ok:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                decoder_ok = False
    return "utf-8" if decoder_ok else "cp1252"
