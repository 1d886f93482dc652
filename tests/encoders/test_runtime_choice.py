"""`--runtime auto` chooses by measurement: the fastest runtime whose features stay within
cosine 0.999 of fp32 eager torch, measured once per machine and key, read from the cache after."""

from __future__ import annotations

import json

import pytest

import afgen.encoders.runtime_choice as rc
from afgen.config import CACHE_DIR_ENV, MEASURE_RUNTIMES_ENV

SIZE = (32, 32)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(MEASURE_RUNTIMES_ENV, raising=False)
    return tmp_path / "cache" / rc.CACHE_FILE


def test_measures_every_candidate_once_then_reads_the_cache(cache, monkeypatch):
    choice = rc.choose_runtime("resnet18", SIZE, 4, "fp32")
    assert not choice.cached and choice.how == "measured"
    labels = [t.label for t in choice.trials]
    assert labels == [f"{r} {p}" for r, p in rc.candidates("fp32")] and "torch fp32" in labels
    assert all(t.error is None and t.images_per_s > 0 and t.min_cosine > 0.9999 for t in choice.trials)
    fastest = max(choice.trials, key=lambda t: t.images_per_s)
    assert (choice.runtime, choice.precision) == (fastest.runtime, fastest.precision)
    assert choice.reason().startswith(f"{fastest.label}: fastest") and "measured now" in choice.reason()
    assert len(json.loads(cache.read_text())) == 1

    monkeypatch.setattr(rc, "measure", lambda *a, **k: pytest.fail("measured again despite the cache"))
    again = rc.choose_runtime("resnet18", SIZE, 4, "fp32")
    assert again.cached and (again.runtime, again.precision) == (choice.runtime, choice.precision)
    assert "cached measurement" in again.reason()


def _fake(trials):
    calls = []

    def measure(backbone, size, batch, precision, **kwargs):
        calls.append((backbone, size, batch, precision))
        return tuple(trials)
    return measure, calls


def test_never_picks_a_runtime_below_the_cosine_floor_or_one_that_failed(cache, monkeypatch):
    measure, calls = _fake([rc.Trial("torch", "fp32", 10.0, 1.0), rc.Trial("openvino", "bf16", 100.0, 0.99),
                            rc.Trial("onnxruntime", "fp32", 50.0, 0.99999),
                            rc.Trial("openvino", "fp32", error="RuntimeError: no")])
    monkeypatch.setattr(rc, "measure", measure)
    choice = rc.choose_runtime("resnet50", (224, 224), 16, "auto")
    assert (choice.runtime, choice.precision) == ("onnxruntime", "fp32")
    assert "openvino bf16 refused: cosine 0.99000" in choice.reason() and "openvino fp32 failed" in choice.reason()
    # another batch, size or backbone is another measurement; the same one is not
    for args in [("resnet50", (224, 224), 8), ("resnet50", (112, 112), 16), ("resnet18", (224, 224), 16),
                 ("resnet50", (224, 224), 16)]:
        rc.choose_runtime(*args, "auto")
    assert len(calls) == 4 and len(json.loads(cache.read_text())) == 4


def test_nothing_eligible_falls_back_to_eager_torch(cache, monkeypatch):
    monkeypatch.setattr(rc, "measure", _fake([rc.Trial("onnxruntime", "fp32", 50.0, 0.5)])[0])
    choice = rc.choose_runtime("resnet50", (224, 224), 16, "auto")
    assert (choice.runtime, choice.precision) == ("torch", "fp32")


def test_a_damaged_cache_is_measured_again_and_rewritten(cache, monkeypatch, caplog):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    measure, calls = _fake([rc.Trial("torch", "fp32", 10.0, 1.0)])
    monkeypatch.setattr(rc, "measure", measure)
    assert rc.choose_runtime("resnet50", (224, 224), 16, "fp32").runtime == "torch"
    assert len(calls) == 1 and "unreadable runtime cache" in caplog.text
    assert len(json.loads(cache.read_text())) == 1


def test_an_unwritable_cache_does_not_stop_the_choice(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker / "sub"))  # a folder under a file cannot exist
    monkeypatch.setattr(rc, "measure", _fake([rc.Trial("openvino", "fp32", 30.0, 1.0)])[0])
    assert rc.choose_runtime("resnet50", (224, 224), 16, "fp32").runtime == "openvino"
    assert "cannot cache" in caplog.text


def test_measuring_can_be_switched_off_for_a_fixed_choice(cache, monkeypatch):
    monkeypatch.setenv(MEASURE_RUNTIMES_ENV, "0")
    monkeypatch.setattr(rc, "measure", lambda *a, **k: pytest.fail("measured although switched off"))
    choice = rc.choose_runtime("resnet50", (224, 224), 16, "fp32")
    assert choice.precision == "fp32" and choice.runtime in ("onnxruntime", "torch") and "fixed rule" in choice.how
    assert not cache.exists()


def test_precision_auto_with_a_named_runtime_is_that_runtimes_fastest_eligible_precision(cache, monkeypatch):
    """Issue 29, point 4: `--runtime NAME --precision auto` chooses among NAME's own trials (torch,
    OpenVINO) or is fp32 at once (ONNX Runtime, which runs nothing else), never a refusal."""
    monkeypatch.setattr(rc, "measure", _fake([rc.Trial("torch", "fp32", 10.0, 1.0), rc.Trial("torch", "bf16", 30.0, 0.9995),
                                              rc.Trial("onnxruntime", "fp32", 50.0, 1.0),
                                              rc.Trial("openvino", "fp32", 40.0, 1.0),
                                              rc.Trial("openvino", "bf16", 90.0, 0.99)])[0])
    torch_choice = rc.choose_runtime("resnet50", (224, 224), 16, "auto", runtime="torch")
    assert (torch_choice.runtime, torch_choice.precision) == ("torch", "bf16")
    assert "fastest precision of --runtime torch" in torch_choice.reason()
    assert "onnxruntime" not in torch_choice.reason()  # compared with torch's own trials only
    ov = rc.choose_runtime("resnet50", (224, 224), 16, "auto", runtime="openvino")
    assert (ov.runtime, ov.precision) == ("openvino", "fp32")  # bf16 falls below the cosine floor
    monkeypatch.setattr(rc, "measure", lambda *a, **k: pytest.fail("ONNX Runtime has one precision to measure"))
    monkeypatch.setattr(rc, "bf16_supported", lambda device: True)
    ort = rc.choose_runtime("resnet50", (224, 224), 16, "auto", runtime="onnxruntime")
    assert (ort.runtime, ort.precision) == ("onnxruntime", "fp32") and "only precision it runs" in ort.reason()


def test_a_candidate_already_slower_on_its_probe_is_timed_no_further(monkeypatch):
    """Issue 29, point 2: the measurement's cost is mostly the slow runtimes' batches; the likely
    fastest go first, each is probed on a few images (after a first call on them), and
    one whose probe is RUNTIME_DROP_SLOWER x slower than the fastest so far stops there.
    A fake clock: each fake model call advances it by its images / that runtime's speed (and a
    second on its first call, as a runtime's set-up: the probe must not count it)."""
    import numpy as np

    from afgen.config import RUNTIME_TRIAL_BATCHES

    speeds = {("openvino", "bf16"): 100.0, ("torch", "bf16"): 70.0, ("openvino", "fp32"): 30.0,
              ("onnxruntime", "fp32"): 32.0, ("torch", "fp32"): 20.0}
    clock, calls = [0.0], {k: [] for k in speeds}

    class Fake:
        def __init__(self, pair, batch):
            self.pair, self.batch_size = pair, batch

        def __call__(self, images):
            first = not calls[self.pair]
            calls[self.pair].append(len(images))
            few = 1.5 if len(images) < 16 else 1.0  # a few images run faster per image than a batch
            clock[0] += len(images) / (few * speeds[self.pair]) + (1.0 if first else 0.0)  # one-off set-up
            return np.ones((len(images), 8), np.float32)

    monkeypatch.setattr(rc, "candidates", lambda precision: list(speeds))
    monkeypatch.setattr(rc, "build_backbone", lambda name, w, d, prec, batch, runtime: Fake((runtime, prec), batch))
    monkeypatch.setattr(rc.time, "perf_counter", lambda: clock[0])
    trials = {(t.runtime, t.precision): t for t in rc.measure("resnet50", SIZE, 16, "auto")}
    assert list(trials) == list(speeds)  # reported in the candidates' order
    probe = [rc.REFERENCE_IMAGES] * 2  # the cosine's call, then the timed one
    timed = probe + [16] * (RUNTIME_TRIAL_BATCHES + 1)
    assert calls[("openvino", "bf16")] == timed and calls[("torch", "bf16")] == timed  # within 2x: timed
    assert calls[("openvino", "fp32")] == probe and calls[("onnxruntime", "fp32")] == probe  # probed 45, 48: 2x below 100
    assert calls[("torch", "fp32")] == probe  # the reference and its probe: not one batch more
    assert trials[("openvino", "fp32")].dropped and not trials[("torch", "bf16")].dropped
    assert max(trials.values(), key=lambda t: t.images_per_s).label == "openvino bf16"
    timed_speeds = {k: t.images_per_s for k, t in trials.items() if not t.dropped}
    assert timed_speeds == pytest.approx({k: speeds[k] for k in timed_speeds})  # the batch's speed, not the probe's
    assert all(t.threads > 0 for t in trials.values())


def test_every_timed_call_is_inside_hush_and_every_build_outside(monkeypatch):
    """Issue 29, no dead start: the run's producers work through the measurement's builds and
    exports and are paused (`hush`) while a candidate is timed, so the speeds are the backbone's alone."""
    from contextlib import contextmanager

    import numpy as np

    speeds = {("openvino", "bf16"): 100.0, ("torch", "bf16"): 70.0, ("openvino", "fp32"): 30.0, ("torch", "fp32"): 20.0}
    hushed, events = [False], []

    class Fake:
        def __init__(self, pair, batch):
            self.pair, self.batch_size, self.calls = pair, batch, 0

        def __call__(self, images):
            self.calls += 1
            events.append(("call", self.pair, self.calls, hushed[0]))
            return np.ones((len(images), 8), np.float32)

    def build(name, w, d, prec, batch, runtime):
        events.append(("build", (runtime, prec), 0, hushed[0]))
        return Fake((runtime, prec), batch)

    @contextmanager
    def hush():
        hushed[0] = True
        yield
        hushed[0] = False

    monkeypatch.setattr(rc, "candidates", lambda precision: list(speeds))
    monkeypatch.setattr(rc, "build_backbone", build)
    rc.measure("resnet50", SIZE, 16, "auto", hush=hush)
    assert [e for e in events if e[0] == "build" and e[3]] == []  # builds (exports, compiles) overlap the producers
    firsts = [e for e in events if e[0] == "call" and e[2] == 1 and e[1] != ("torch", "fp32")]
    assert firsts and not any(e[3] for e in firsts)  # a first call (one-off costs, the cosine) is not timed
    timed = [e for e in events if e[0] == "call" and (e[2] > 1 or e[1] == ("torch", "fp32"))]
    reference = next(e for e in events if e[0] == "call" and e[1] == ("torch", "fp32"))
    assert all(e[3] for e in timed if e is not reference)  # every probe and batch timed: producers paused
    assert not hushed[0]


def test_will_measure_says_whether_choose_runtime_times_anything(cache, monkeypatch):
    assert rc.will_measure("resnet18", SIZE, 4)
    monkeypatch.setattr(rc, "measure", _fake([rc.Trial("openvino", "fp32", 30.0, 1.0)])[0])
    rc.choose_runtime("resnet18", SIZE, 4)
    assert not rc.will_measure("resnet18", SIZE, 4)  # cached now
    assert rc.will_measure("resnet18", SIZE, 8)  # another batch: another key
    assert not rc.will_measure("resnet18", SIZE, 8, runtime="onnxruntime")  # nothing to choose
    monkeypatch.setenv(MEASURE_RUNTIMES_ENV, "0")
    assert not rc.will_measure("resnet18", SIZE, 8)
