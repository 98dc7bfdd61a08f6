"""Errors raised at the data boundary.

Every importer and validator raises :class:`DataError` with the file, line and field that
are wrong, so a user can open the file and fix the one thing that is wrong. Nothing is
written when one is raised.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input: says what is wrong and where (file, line, field)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: ``file:line: field 'x': message``."""
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.message}"

    def located(self, file: str | Path) -> DataError:
        """The same error with the file filled in when it was not known where it arose."""
        if self.file is not None:
            return self
        return DataError(self.message, file=file, line=self.line, field=self.field)


class UnknownFormatError(DataError):
    """The file's format could not be recognised (or a forced format does not fit)."""
