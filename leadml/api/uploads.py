"""Uploaded CSV files read into records: size, encoding, delimiter, header and width checked, each a 400/413 naming `file`.

Used by every upload: training data (POST /datasets, the admin's append) and outcomes (POST /outcomes).
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from leadml.api.errors import ApplicationError, PayloadTooLargeError
from leadml.api.records import records_check
from leadml.ml.parsing import read_csv_typed

CSV_DELIMITERS = ",;\t|"
LINE_END = re.compile(r"\r\n|\r|\n")
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def csv_read(upload: UploadedFile) -> list[dict[str, Any]]:
    """Parse an uploaded CSV file into records; refuse empty, binary or malformed files."""
    if upload.size is not None and upload.size > settings.LEADML_MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"file is {upload.size} bytes; the limit is {settings.LEADML_MAX_UPLOAD_BYTES} bytes",
            details={"file": ["too large"]},
        )
    raw = upload.read()
    if not raw.strip():
        raise ApplicationError("file is empty", details={"file": ["empty file"]})
    if raw.startswith(UTF16_BOMS):
        # Excel's "Unicode text" export: UTF-16 with a byte-order mark (and NULs in every character).
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as error:
            raise ApplicationError("file is not valid UTF-16 text", details={"file": ["not a CSV file"]}) from error
    if b"\x00" in raw[:8192]:
        raise ApplicationError("file is not a CSV text file (binary content)", details={"file": ["not a CSV file"]})
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as error:
            raise ApplicationError("file is not UTF-8 text", details={"file": ["not a CSV file"]}) from error
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    # The header alone says whether the file is too wide, before any parsing work. Lines
    # may end in \r\n, \n or a lone \r (old spreadsheet exports).
    try:
        header = next(csv.reader(io.StringIO(LINE_END.split(text, maxsplit=1)[0]), delimiter=delimiter), [])
    except csv.Error as error:
        raise ApplicationError(f"malformed CSV header: {error}", details={"file": ["malformed CSV"]}) from error
    columns_check(len(header), field="file")
    try:
        frame = read_csv_typed(io.StringIO(text), sep=delimiter, skipinitialspace=True)
    except pd.errors.EmptyDataError as error:
        raise ApplicationError("file has no header or rows", details={"file": ["empty CSV"]}) from error
    except (pd.errors.ParserError, ValueError) as error:
        raise ApplicationError(f"malformed CSV: {error}", details={"file": ["malformed CSV"]}) from error
    if frame.empty:
        raise ApplicationError("CSV has a header but no data rows", details={"file": ["no data rows"]})
    unnamed = [str(column) for column in frame.columns if str(column).startswith("Unnamed:")]
    if len(unnamed) == len(frame.columns):
        raise ApplicationError("CSV has no header row naming its columns", details={"file": ["missing header"]})
    # to_json turns NaN into null and numpy scalars into JSON numbers in one fast pass.
    rows = json.loads(frame.to_json(orient="records", date_format="iso"))
    records_check(rows, field="file rows")
    return rows


def columns_check(count: int, *, field: str) -> None:
    if count > settings.LEADML_MAX_UPLOAD_COLUMNS:
        raise PayloadTooLargeError(
            f"the upload has {count} columns; at most {settings.LEADML_MAX_UPLOAD_COLUMNS} are allowed",
            details={field: [f"more than {settings.LEADML_MAX_UPLOAD_COLUMNS} columns"]},
        )
