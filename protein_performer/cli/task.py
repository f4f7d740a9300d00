"""The one task runner of the entry points (lightning-hydra-template's ``task_wrapper``).

Every command's ``main`` calls :func:`run_task`; a user's mistake becomes one line on stderr,
``<prog>: error: <message>``, and exit status 2 (``HYDRA_FULL_ERROR=1`` shows the traceback).
A user's mistake is an :class:`~protein_performer.errors.InputError` (a bad file, checkpoint,
sequence or option, the :class:`~protein_performer.cli.config.ConfigError` of a config value,
a :class:`~protein_performer.errors.MissingInputError` for a path the user named), an
OmegaConf error, a failed download, or a path that cannot be used as given (a
``PermissionError``, ``IsADirectoryError`` or ``NotADirectoryError`` naming its path: an
unwritable ``out=``, a folder given for a file). Nothing else: a plain ``ValueError`` or other
``OSError`` raised inside a command is a bug and keeps its traceback, so a check a user can trip
must raise an ``InputError`` subclass where the input is read.
Also the small helpers the entry points share: :func:`require`, :func:`given`,
:func:`input_paths`, :func:`options_from` (options through :func:`~.config.make`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from protein_performer.cli.config import ConfigError, make, user_path
from protein_performer.data.corpus.download import DownloadError
from protein_performer.errors import InputError

T = TypeVar("T")

#: what the user can fix: one line and exit status 2 (a download the URL or network broke
#: too); never plain ValueError/OSError, which would hide a bug's traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    OmegaConfBaseException,
    DownloadError,
)


#: OS errors that, naming a path, mean the path given cannot be used as it is
PATH_MISTAKES: tuple[type[OSError], ...] = (PermissionError, IsADirectoryError, NotADirectoryError)


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is the user's to fix (:data:`USER_ERRORS`, or a :data:`PATH_MISTAKES`
    error that names its path)."""
    if isinstance(err, USER_ERRORS):
        return True
    return isinstance(err, PATH_MISTAKES) and err.filename is not None


def report(prog: str, err: BaseException) -> int:
    """Print ``<prog>: error: <err>`` (one line) on stderr; the exit status, 2."""
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 2


def run_task(prog: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; a user's error (:func:`is_user_error`) -> :func:`report` and exit
    status 2 (``HYDRA_FULL_ERROR=1``: the traceback instead)."""
    try:
        return fn(*args)
    except (*USER_ERRORS, *PATH_MISTAKES) as err:
        if not is_user_error(err) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(report(prog, err))


def given(cfg: DictConfig, key: str) -> bool:
    """Whether ``cfg[key]`` is set (not ``???``, null or empty)."""
    try:
        return bool(cfg[key])
    except MissingMandatoryValue:
        return False


def require(cfg: DictConfig, key: str, usage: str) -> str:
    """``cfg[key]`` as a string, or a :class:`ConfigError` showing ``usage`` (the command line
    that sets it)."""
    if not given(cfg, key):
        raise ConfigError(f"{key} is required: {usage}")
    return str(cfg[key])


def plain(value: Any) -> Any:
    """A config node as plain Python (lists, dicts); anything else as it is."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def input_paths(fasta: Any, default: Path | None = None) -> list[Path]:
    """``fasta=`` (one path or a list) as paths from the start directory; ``default`` when
    unset. An empty list is a :class:`ConfigError`."""
    fasta = plain(fasta)
    if fasta is None and default is not None:
        return [default]
    if isinstance(fasta, (str, Path)):
        fasta = [fasta]
    paths = [user_path(str(p)) for p in fasta or []]
    if not paths:
        raise ConfigError("fasta must list at least one file, e.g. 'fasta=[test.fasta.gz]'")
    return paths


def options_from(cls: type, cfg: DictConfig, section: str, **extra: Any) -> Any:
    """The fields of dataclass ``cls`` read from the top level of ``cfg`` and validated by
    :func:`~.config.make` (errors name ``<section>.<field>``)."""
    names = {f.name for f in dataclasses.fields(cls)} - set(extra)
    values = {name: plain(cfg[name]) for name in names if name in cfg}
    return make(cls, section, values, **extra)
