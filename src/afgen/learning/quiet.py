"""Training output is afgen's own: Lightning's tips ("try installing litlogger"), its accelerator
banners ("GPU available", "TPU available") and the deprecation warnings libraries raise from
their own code are switched off at their source, for afgen's calls only; -v shows them all.

Lightning logs its tips and banners at INFO through its own loggers, which it sets to INFO when
it is imported (after the CLI set up logging), so afgen sets them again before each Trainer.
Deprecation warnings are filtered inside a `warnings.catch_warnings()` block around afgen's
calls into Lightning, and only those attributed to the libraries' modules: afgen's, the user's
and every other warning still show.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Lightning's loggers: where its tips and banners go.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
#: Modules whose own deprecation warnings a user of afgen cannot act on (a regex on the module a
#: warning is attributed to).
LIBRARIES = r"(lightning|lightning_fabric|lightning_utilities|pytorch_lightning|torch|torchmetrics|tensorboard\w*)(\.|$)"
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
#: Lightning's advice on afgen's own DataLoader (not the user's to change).
ADVICE = (r"The '\w+' does not have many workers",)


def verbose() -> bool:
    """-v: afgen's logger shows debug lines (the CLI's --verbose, or the caller's own logging)."""
    return logging.getLogger("afgen").isEnabledFor(logging.DEBUG)


def quiet_lightning_logs() -> None:
    """Lightning's info lines (tips, accelerator banners, "`Trainer.fit` stopped") off unless -v;
    its warnings (WARNING and above) still show. Call before building a Trainer."""
    level = logging.INFO if verbose() else logging.WARNING
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Inside the block, deprecation warnings raised from the libraries' own modules (and
    Lightning's advice on afgen's DataLoader) are not shown; everything shows with -v."""
    if verbose():
        yield
        return
    with warnings.catch_warnings():
        for category in DEPRECATIONS:
            warnings.filterwarnings("ignore", category=category, module=LIBRARIES)
        for message in ADVICE:
            warnings.filterwarnings("ignore", message=message)
        yield
