"""The task runner: only a user's mistake (an InputError, a config error) is exit 2 and one line;
a programming bug keeps its traceback, whatever its exception type."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from protein_performer.cli.config import ConfigError
from protein_performer.cli.task import run_task
from protein_performer.data.storage.store import open_source
from protein_performer.errors import InputError, MissingInputError


def _raise(err: BaseException) -> None:
    raise err


@pytest.mark.parametrize(
    "err",
    [InputError("data.x: bad"), ConfigError("model.d_model must be > 0, got 0")],
    ids=["input", "config"],
)
def test_a_user_error_is_one_line_and_exit_2(err, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_:
        run_task("prog", _raise, err)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"prog: error: {err}\n"


def test_an_omegaconf_error_is_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = OmegaConf.create({"a": "???"})
    with pytest.raises(SystemExit) as exit_:
        run_task("prog", lambda: cfg.a)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("prog: error: Missing mandatory value: a")


@pytest.mark.parametrize(
    "err",
    [ValueError("shapes disagree"), FileNotFoundError("/tmp/cache"), KeyError("k")],
    ids=["value", "os", "key"],
)
def test_a_bug_is_not_hidden_as_a_user_error(err, capsys):
    """A ValueError (or OSError) raised inside the command is a bug: it propagates."""
    with pytest.raises(type(err)) as raised:
        run_task("prog", _raise, err)
    assert raised.value is err
    assert capsys.readouterr().err == ""


def test_full_error_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(InputError, match="bad"):
        run_task("prog", _raise, InputError("bad"))


def test_a_missing_user_path_is_an_input_error_and_still_a_file_not_found(tmp_path, capsys):
    missing = tmp_path / "nope.fasta"
    with pytest.raises(MissingInputError) as raised:
        open_source(missing)
    assert isinstance(raised.value, FileNotFoundError)  # callers catching the OS error still do
    with pytest.raises(SystemExit) as exit_:
        run_task("prog", open_source, missing)
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err
        == f"prog: error: {missing}: no such FASTA file or store directory\n"
    )


def test_a_path_that_cannot_be_used_is_exit_2_a_bare_os_error_is_not(tmp_path, capsys, monkeypatch):
    """A folder opened as a file names its path: the user's to fix. The same error type
    without a path (raised by code, not by the OS on a path) stays a bug."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_:
        run_task("prog", lambda: open(tmp_path).read())
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"prog: error: [Errno 21] Is a directory: '{tmp_path}'"
    )
    with pytest.raises(PermissionError):
        run_task("prog", _raise, PermissionError("no path named"))
    assert capsys.readouterr().err == ""
