"""Write the README's model table from the model cards, so no metric is ever typed by hand.

``python -m training.report README.md`` replaces the text between the two markers below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.age_model import models_dir

BEGIN, END = "<!-- models-table:begin -->", "<!-- models-table:end -->"
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


def update_readme(readme: Path, folder: Path | None = None) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + models_table(load_cards(folder)) + "\n" + text[end:]
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":
    update_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
