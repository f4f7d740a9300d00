"""The one base class of every error a user's input can cause.

A bad file, checkpoint, option or sequence raises a subclass of :class:`InputError` with a
one-line message naming the input and the fix; the entry points (``cli/``) turn any of them
into that line on stderr and exit code 2, without a traceback. Lowest level of the package:
``data/`` and everything above may import it.
"""

from __future__ import annotations


class InputError(ValueError):
    """A user input (file, checkpoint, option, sequence) that cannot be used as given."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named does not exist (still a :class:`FileNotFoundError`)."""


class OutputExistsError(InputError, FileExistsError):
    """An output path the user named is taken (still a :class:`FileExistsError`)."""
