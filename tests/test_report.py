import json

from conftest import REPO
from training.report import BEGIN, END, load_cards, models_table, update_readme


def test_readme_table_is_the_one_generated_from_the_cards():
    text = (REPO / "README.md").read_text()
    shown = text[text.index(BEGIN) + len(BEGIN): text.index(END)].strip()
    assert shown == models_table(load_cards()).strip(), "run: python -m training.report README.md"


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
