import json

from conftest import REPO
from training.report import (BEGIN, END, PERF_BEGIN, PERF_END, load_benchmarks, load_cards, models_table,
                             performance_table, update_readme)


def test_readme_tables_are_the_ones_generated_from_cards_and_benchmarks():
    text = (REPO / "README.md").read_text()
    shown = text[text.index(BEGIN) + len(BEGIN): text.index(END)].strip()
    assert shown == models_table(load_cards()).strip(), "run: python -m training.report README.md"
    shown = text[text.index(PERF_BEGIN) + len(PERF_BEGIN): text.index(PERF_END)].strip()
    assert shown == performance_table(load_benchmarks()).strip(), "run: python -m training.report README.md"


def test_performance_table_reads_the_saved_benchmark():
    stages = {s: {"median_ms": 1.25, "p95_ms": 2.0} for s in ("detect", "crop", "infer", "track", "draw", "encode")}
    run = {"model": "cnn", "refresh_every": 3, "command": "agecam benchmark --save x.json",
           "pipeline": [{"faces": n, "fps": 40.0 - n, "stages": stages} for n in (1, 3, 5)],
           "live_latency": {"capture_to_output_ms": {"median_ms": 20.0, "p95_ms": 31.4}}}
    row = performance_table([run]).splitlines()[2]
    assert row.startswith("| `cnn` | 3 | 39.0 | 37.0 | 35.0 | 1.2 |") and "| 31 ms |" in row


def test_table_reads_every_number_from_the_card(tmp_path):
    card = {"architecture": "cnn", "input_size": 96, "weights_init": "none", "default": True,
            "metrics": {"test": {"n": 879, "mae": 5.4321, "mse": 61.23, "rmse": 7.825}},
            "training": {"epochs_run": 30, "seconds": 3600, "hardware": {"cpu_count": 2}}}
    (tmp_path / "cnn.keras").write_text("")
    (tmp_path / "cnn.json").write_text(json.dumps(card))
    row = models_table(load_cards(tmp_path)).splitlines()[2]
    assert "`cnn` (default)" in row and "| 879 | 5.43 | 61.2 | 7.83 |" in row and "8.58 / 11.67" in row
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\noutro\n")
    assert update_readme(readme, tmp_path) and "5.43" in readme.read_text() and "old" not in readme.read_text()
