"""The command line's help: every setting once, with its default and variable."""

from __future__ import annotations

import pytest

from vectorizer.cli import main
from vectorizer.settings import setting_fields


def test_serve_help_names_each_setting_with_one_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text  # (argparse's, beside our own)
    for f in setting_fields():
        env = f"VECTORIZER_{f.name.upper()}"
        assert f"--{f.name.replace('_', '-')}" in text and f"[env {env}; default " in text, f.name


def test_restore_help_shows_no_argparse_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's "(default: None)" contradicted the data directory's own default."""
    with pytest.raises(SystemExit) as done:
        main(["restore", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "else data)" in text and "(default:" not in text
