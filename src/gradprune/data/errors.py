"""Exceptions of the data layer; all derive from DataError so callers can catch one type."""

from __future__ import annotations

MIRROR_HINT = (
    "To use a local copy, set GRADPRUNE_DATA_MIRROR=/path/to/mirror (or an http(s):// URL), "
    "or the config key data.mirror; the mirror is laid out as <mirror>/<dataset>/<file>."
)


class DataError(Exception):
    """Base class of every error raised by gradprune.data."""


class UnknownDataError(DataError, KeyError):
    """A dataset or file that the registry does not list."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ChecksumError(DataError):
    """Downloaded or copied bytes do not match the registry's size/sha256."""


class FetchError(DataError):
    """One or more files could not be obtained from any source."""


class UnsafeRegistryError(DataError, ValueError):
    """A registry row whose dataset or file name would lead outside its folder."""


class UnsafeArchiveError(DataError):
    """An archive member would be written outside the destination."""


class FormatError(DataError):
    """A data file does not have the expected format or size."""
