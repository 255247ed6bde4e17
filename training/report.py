"""Write the README's model table from the model cards, so no metric is ever typed by hand.

``python -m training.report README.md`` replaces the text between the two markers below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.age_model import models_dir

BEGIN, END = "<!-- models-table:begin -->", "<!-- models-table:end -->"
PERF_BEGIN, PERF_END = "<!-- performance-table:begin -->", "<!-- performance-table:end -->"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
STAGE_COLUMNS = ("detect", "crop", "infer", "track", "draw", "encode")
SEED_APP = {"resnet50": (6.72, 9.68), "cnn": (8.58, 11.67)}  # MAE, RMSE published by the seed app


def load_cards(folder: Path | None = None) -> dict[str, dict]:
    """Every shipped model's card, by model name."""
    return {p.stem: json.loads(p.with_suffix(".json").read_text())
            for p in sorted(Path(folder or models_dir()).glob("*.keras")) if p.with_suffix(".json").is_file()}


def models_table(cards: dict[str, dict]) -> str:
    """Markdown table of test-split metrics per shipped model."""
    if not cards:
        return "_No trained model is shipped yet: train one with `agecam train` (see Training)._"
    lines = ["| model | input | init | test n | MAE | MSE | RMSE | seed app MAE / RMSE | epochs | training time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, card in cards.items():
        test, training = card["metrics"]["test"], card["training"]
        seed = SEED_APP.get(card["architecture"])
        lines.append(
            f"| `{name}`{' (default)' if card.get('default') else ''} | {card['input_size']} px "
            f"| {card['weights_init']} | {test['n']} | {test['mae']:.2f} | {test['mse']:.1f} | {test['rmse']:.2f} "
            f"| {f'{seed[0]} / {seed[1]}' if seed else '-'} | {training['epochs_run']} "
            f"| {training['seconds'] / 60:.0f} min on {training['hardware'].get('cpu_count')} CPU cores |"
        )
    return "\n".join(lines)


def load_benchmarks(folder: Path = ASSETS) -> list[dict]:
    """Saved ``agecam benchmark --save`` results, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("benchmark-*.json"))]


def performance_table(results: list[dict]) -> str:
    """Markdown: fps per face count and per-stage median latency of each saved benchmark run."""
    if not results:
        return "_No benchmark saved yet: run `agecam benchmark --save assets/benchmark-NAME.json`._"
    counts = sorted({row["faces"] for r in results for row in r["pipeline"]})
    lines = ["| model | refresh every | " + " | ".join(f"fps, {n} face{'s' * (n > 1)}" for n in counts)
             + " | " + " | ".join(f"{s} ms" for s in STAGE_COLUMNS) + " | live latency p95 | command |",
             "|---" * (3 + len(counts) + len(STAGE_COLUMNS)) + "|---|"]
    for r in results:
        rows = {row["faces"]: row for row in r["pipeline"]}
        ref = rows.get(3) or next(iter(rows.values()))
        fps = [f"{rows[n]['fps']:.1f}" if n in rows else "-" for n in counts]
        stages = [f"{ref['stages'][s]['median_ms']:.1f}" if ref["stages"][s]["median_ms"] is not None else "-"
                  for s in STAGE_COLUMNS]
        live = r["live_latency"]["capture_to_output_ms"]["p95_ms"]
        lines.append(f"| `{r['model']}` | {r['refresh_every']} | " + " | ".join(fps) + " | " + " | ".join(stages)
                     + f" | {live:.0f} ms | `{r.get('command', 'agecam benchmark')}` |")
    return "\n".join(lines)


def _replace_between(text: str, begin: str, end: str, body: str) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + body + "\n" + text[stop:]


def update_readme(readme: Path, folder: Path | None = None, assets: Path = ASSETS) -> bool:
    """Rewrite the generated tables between their markers; True when the file changed."""
    text = readme.read_text()
    new = _replace_between(text, BEGIN, END, models_table(load_cards(folder)))
    if PERF_BEGIN in new:
        new = _replace_between(new, PERF_BEGIN, PERF_END, performance_table(load_benchmarks(assets)))
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":
    update_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
