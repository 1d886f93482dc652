"""A run folder's files and how they are read: the contract between `afgen train` and its readers.

RUN/model.pt bundles the chosen weights of every stage and what rebuilds each model (its
contract, writer and reader, is contracts/modelfile.py),
RUN/metrics.json and RUN/provenance.json describe it, RUN/<stage>/checkpoints/ hold Lightning's
checkpoints, RUN/oof/<stage>/generated.npz caches the out-of-fold generated audio; a multi-seed run is
RUN/seeds.json listing RUN/seed-<s>/ single-seed runs. Damage is a RunError naming the file and
the fix (`afgen verify RUN --repair`).
"""

from __future__ import annotations

from pathlib import Path

from afgen.contracts.store import read_json
from afgen.errors import RunError, repair_hint

BUNDLE = "model.pt"
METRICS = "metrics.json"
PROVENANCE = "provenance.json"
SEEDS_FILE = "seeds.json"
OOF_DIR = "oof"


def require_model(run: str | Path | None, onnx: str | Path | None) -> None:
    """Exactly one model to predict with, and its folder there: a run (`afgen train`) or an
    exported model (`afgen export-model`). Checked by the CLI before torch loads and by the API."""
    if run is None and onnx is None:
        raise RunError("give the model to predict with: --run RUN (a folder from `afgen train`) or --onnx DIR "
                       "(a folder from `afgen export-model`)")
    if run is not None and onnx is not None:
        raise RunError("give a run (--run RUN) or an exported model folder (--onnx DIR), not both")
    if onnx is not None and not Path(onnx).is_dir():
        raise RunError("no such folder; give the folder `afgen export-model RUN OUT` wrote", onnx)
    if run is not None:
        seed_runs(run)  # a missing run folder is named as such


def seed_runs(run: str | Path) -> list[Path]:
    """The single-seed run folders of RUN: RUN itself, or RUN/seed-<s>/ for a multi-seed run."""
    run = Path(run)
    if not run.is_dir():
        raise RunError("no such run folder; train one with `afgen train FEATURES RUN`" if not run.exists()
                       else "is a file, not a run folder", run)
    listing = run / SEEDS_FILE
    if listing.is_file():
        fix = repair_hint(run, f"`afgen train FEATURES {run} --seeds ... --resume`")
        try:
            return [run / name for name in read_json(listing, fix)["runs"]]
        except (KeyError, TypeError):
            raise RunError(f"damaged: no list of runs; {fix}", listing) from None
    return [run]


def damaged(path: Path, exc: Exception, fix: str) -> RunError:
    """A run file that will not load, named with the first line of why and the fix."""
    first = str(exc).strip().splitlines()[0].split(". ")[0][:160] if str(exc).strip() else ""
    return RunError(f"damaged ({type(exc).__name__}{': ' + first if first else ''}); {fix}", path)


def load_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint (weights_only); a damaged one is a RunError naming it and the fix."""
    run = path.parent.parent.parent
    import torch  # here, so that checking a store does not load torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"missing checkpoint; {repair_hint(run, '`afgen train ... --resume`')}",
                       path) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad zip/pickle
        raise damaged(path, exc, repair_hint(run, f"`afgen train FEATURES {run} --resume` "
                                  "to retrain that stage")) from None
