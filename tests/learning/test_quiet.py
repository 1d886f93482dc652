"""Training output is afgen's own: no Lightning tips or accelerator banners, no library
deprecation warnings, no NumPy "not writable" warning; -v shows Lightning's lines again; the
warning filters hold only inside afgen's calls and only for the libraries' own modules."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from afgen.learning.quiet import quiet_library_warnings, quiet_lightning_logs

NOISE = ("litlogger", "TPU available", "GPU available", "not writable", "DeprecationWarning", "is deprecated")


def _train(tiny_store, run, *extra):
    cmd = [sys.executable, "-m", "afgen", "train", str(tiny_store / "features"), str(run), "--epochs", "1",
           "--hidden", "16", "--oof-folds", "0", "--methods", "visual_only", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.slow
def test_train_prints_no_library_chatter_and_verbose_shows_it(tiny_store, tmp_path):
    quiet = _train(tiny_store, tmp_path / "quiet")
    assert "run:" in quiet and not [word for word in NOISE if word in quiet], quiet
    loud = _train(tiny_store, tmp_path / "loud", "-v")
    assert "TPU available" in loud and "litlogger" in loud


def _warn(module: str) -> None:
    warnings.warn_explicit("x is deprecated", FutureWarning, "lib.py", 1, module=module)


def test_library_deprecations_are_quiet_only_inside_the_block_and_only_from_the_libraries():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_library_warnings():
            _warn("lightning.pytorch.utilities._pytree")
            _warn("torch.utils._pytree")
            _warn("afgen.learning.fit")  # afgen's own
            _warn("lightning_mine")  # the user's package, whatever its name starts with
        _warn("lightning.pytorch.utilities._pytree")  # outside afgen's calls
    assert [w.filename for w in seen] == ["lib.py"] * 3
    assert [str(w.message) for w in seen] == ["x is deprecated"] * 3


def test_lightning_info_lines_are_off_and_verbose_turns_them_on():
    afgen_logger = logging.getLogger("afgen")
    old = afgen_logger.level
    try:
        afgen_logger.setLevel(logging.INFO)
        quiet_lightning_logs()
        assert not logging.getLogger("lightning.pytorch").isEnabledFor(logging.INFO)
        assert logging.getLogger("lightning.pytorch").isEnabledFor(logging.WARNING)
        afgen_logger.setLevel(logging.DEBUG)  # -v
        quiet_lightning_logs()
        assert logging.getLogger("lightning.pytorch").isEnabledFor(logging.INFO)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with quiet_library_warnings():
                _warn("lightning.pytorch.utilities._pytree")
        assert len(seen) == 1
    finally:
        afgen_logger.setLevel(old)
        quiet_lightning_logs()
