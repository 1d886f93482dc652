"""results.md: the evaluation as a table a person reads (accuracy with intervals per method and
rate, paired verdicts, best per rate, per-seed spread)."""

from __future__ import annotations

from afgen.contracts.evalfolder import BEST_VISUAL


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def cell(ci: dict) -> str:
    return f"{_pct(ci['value'])} [{_pct(ci['low'])}, {_pct(ci['high'])}]"


def _signed(ci: dict) -> str:
    return f"{100 * ci['value']:+.1f} [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}]"


_SHORT = {"better": "better", "worse": "worse", "no resolvable difference": "~"}


def results_table(results: dict) -> str:
    """Markdown: accuracy with intervals per method and rate, paired verdicts, best per rate."""
    rates = list(results["rates"])
    methods = results["methods"]
    last = rates[-1]
    n_seeds = len(results["seeds"])
    lines = [f"Missing-audio evaluation on the {results['split']} split: {results['n_clips']} clips, "
             f"{results['n_with_audio']} with real audio; {n_seeds} seed(s).", "",
             "Top-1 accuracy (%) by missing-audio rate r, with its 95% interval:", "",
             "| method | " + " | ".join(f"r = {r}" for r in rates) + " |",
             "|---|" + "---:|" * len(rates)]
    for key, name in methods.items():
        lines.append(f"| {name} | " + " | ".join(cell(results["rates"][r][key]["top1"]) for r in rates) + " |")
    lines = _primary(results) + lines
    if results.get("visual_ceiling") is not None and results.get("visual_reference"):
        reference = results["visual_reference"][0]
        ceiling = _pct(results["visual_ceiling"])
        lines.append("| Visual ceiling (the best any visual-only classifier can do on this data) | "
                     + " | ".join(ceiling for _ in rates) + " |")
        gaps = results["ceiling_gap_closed"][last]
        shown = ", ".join(f"{methods[k]} {100 * g:+.0f}%" for k, g in gaps.items()
                          if g is not None and k not in results.get("not_competing", ()))
        visual = _pct(results['rates'][last][reference]['top1']['value'])
        if shown:
            lines += ["", f"Share of the gap between visual-only ({visual}%) and the visual ceiling ({ceiling}%) each "
                      f"row closes at r = {last}: {shown}."]
        else:  # the ceiling is the data's limit; a test set can score above it by chance
            lines += ["", f"Visual-only ({visual}%) is already at or above the visual ceiling ({ceiling}%) on this test "
                      "set (within its interval: the ceiling is the data's limit, the excess is sampling), so there is "
                      "no gap for a row to close."]
    lines += ["", f"Each cell: mean over seeds and missing-audio draws [{results['interval']}]. "
              "Rows differ only in the model and in how a missing audio feature is filled."]
    for key, how in results.get("upper_bound", {}).items():
        lines += ["", f"{methods[key]}: {how}."]
    family = results.get("multiplicity")
    if family:
        lines += ["", f"Verdicts below come from {family['correction'].split(' (')[0]}: this table makes "
                  f"{family['comparisons']} paired comparisons, and every verdict holds with the others at once."]
    paper = results.get("paper_method")
    if paper:
        lines += ["", f"Paired difference from the paper's method ({methods[paper]}), percentage points "
                  "[95% interval], by rate (better / worse: the interval excludes 0; ~: no resolvable difference):", "",
                  "| method | " + " | ".join(f"r = {r}" for r in rates) + " |", "|---|" + "---:|" * len(rates)]
        for key, name in methods.items():
            if key == paper:
                continue
            cells = [f"{100 * c['value']:+.1f} {_SHORT[c['verdict']]}"
                     for c in (results["comparisons"][r][key][paper] for r in rates)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not results["comparisons"]:
        return "\n".join(lines) + "\n"
    bases = list(next(iter(results["comparisons"][last].values())))
    best_visual = results.get(BEST_VISUAL, {}).get(last)
    names = {**methods, BEST_VISUAL: f"best visual-only ({methods.get(best_visual, '')})"}
    lines += ["", f"At r = {last}, paired differences (row minus column method, percentage points) with their "
              "95% intervals and verdicts:", "",
              "| method | " + " | ".join(f"vs {names[b]}" for b in bases) + " |", "|---|" + "---:|" * len(bases)]
    for key, name in methods.items():
        c = results["comparisons"][last][key]
        lines.append(f"| {name} | " + " | ".join(f"{_signed(c[b])} {c[b]['verdict']}" for b in bases) + " |")
    lines += ["", "Best method at each rate (the upper bound with real audio excluded):", ""]
    for r in rates:
        b = results["best"][r]
        if b.get("runner_up") is None:
            continue
        word = "resolvably better than" if b["resolvable"] else "not resolvably better than"
        lines.append(f"- r = {r}: **{methods[b['method']]}**, "
                     f"{_pct(results['rates'][r][b['method']]['top1']['value'])}%; {word} "
                     f"{methods[b['runner_up']]} ({100 * b['value']:+.1f} [{100 * b['low']:+.1f}, {100 * b['high']:+.1f}])")
    if n_seeds > 1:
        lines += ["", f"Per seed at r = {last} (top-1 % with its own 95% interval over clips and draws):", "",
                  "| method | " + " | ".join(f"seed {s}" for s in results["seeds"]) + " | mean ± std |",
                  "|---|" + "---:|" * (n_seeds + 1)]
        for key, name in methods.items():
            at_last = results["rates"][last][key]
            m, sd = at_last["seed_mean_std"]
            lines.append(f"| {name} | " + " | ".join(cell(c) for c in at_last["per_seed"]) +
                         f" | {_pct(m)} ± {_pct(sd)} |")
    k = results["config"]["top_k"]
    lines += ["", f"At r = {last}: top-{k} and mean per-class accuracy (%):", "",
              f"| method | top-1 | top-{k} | mean per-class |", "|---|---:|---:|---:|"]
    for key, name in methods.items():
        m = results["rates"][last][key]
        lines.append(f"| {name} | {_pct(m['top1']['value'])} | {_pct(m[f'top{k}'])} | {_pct(m['mean_class'])} |")
    q = results["generated_audio_quality"]
    if q.get("n"):
        lines += ["", f"Generated vs real audio feature ({q['n']} clips with audio, first seed): "
                  f"MSE (standardised; 1.0 = training mean) {q['mse_standardized']['mean']:.3f} ± "
                  f"{q['mse_standardized']['std']:.3f}, cosine {q['cosine']['mean']:.3f}, "
                  f"mean-centred cosine {q['cosine_centered']['mean']:.3f} ± {q['cosine_centered']['std']:.3f}."]
        if n_seeds > 1:
            mse, cos = q["over_seeds"]["mse_standardized"], q["over_seeds"]["cosine_centered"]
            lines.append(f"Over the {n_seeds} seeds: MSE {mse[0]:.3f} ± {mse[1]:.3f}, "
                         f"mean-centred cosine {cos[0]:.3f} ± {cos[1]:.3f}.")
    return "\n".join(lines) + "\n"


def _primary(results: dict) -> list[str]:
    """The declared primary comparison, first and apart from the simultaneous verdicts."""
    p = results.get("primary")
    if not p:
        return []
    names = results["methods"]
    base = names.get(p["baseline_method"], p["baseline_method"])
    if p["baseline"] == BEST_VISUAL:
        base = f"best visual-only ({base})"
    return [f"**Declared primary comparison** (--primary {p['method']}:{p['baseline']}@{p['rate']}): "
            f"{names[p['method']]} minus {base} at r = {p['rate']}: {_signed(p)} percentage points "
            f"[{100 * p['confidence']:g}% interval of this one comparison], {p['verdict']}. "
            "Declared before looking, it is not adjusted for the table's other comparisons, which stay simultaneous.",
            ""]
