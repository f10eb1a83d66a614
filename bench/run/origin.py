"""A run reproduced from a run.json (``bench run --config OLD_RUN/run.json``): is it given the same data?

The run.json holds the config, not the images: the dataset path it names may hold other images by now (files
added, replaced or re-encoded), and the run would go on without a word and publish other numbers under the same
config. So the dataset hash the old run recorded is compared with the hash of the data read now, a one-line
warning says when they differ, and the new run.json records both (``reproduced_from``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.run.config import RunConfig, is_run_record, read_config_document

# The settings that decide the dataset hash (its images, and the split it records): where one of them differs
# from the recorded run's, another hash is expected and the hashes are not compared.
DATA_FIELDS = ("dataset", "generators", "normalize", "caption_groups", "seed", "train_seed", "seeds", "vary_split",
               "max_pixels", "min_side", "allow_outside_paths", "plugins")


def recorded_origin(path: str | Path) -> dict[str, Any] | None:
    """The run whose run.json ``path`` is (its path, run_id, dataset hash and config), or None for a YAML config."""
    data = read_config_document(path)
    if not is_run_record(data) or not isinstance(data.get("dataset_hash"), str):
        return None
    return {"run_json": str(path), "run_id": str(data["run_id"]), "dataset_hash": data["dataset_hash"],
            "config": data["config"]}


def compare_data(origin: dict[str, Any], cfg: RunConfig, dataset_hash: str) -> tuple[dict[str, Any], str | None]:
    """The ``reproduced_from`` record of a run started from ``origin`` that read data hashing to ``dataset_hash``,
    and the warning to print (None when the data is the same, or when a data setting was changed on purpose)."""
    now = cfg.to_dict()
    changed = [name for name in DATA_FIELDS if name in origin["config"] and origin["config"][name] != now[name]]
    record = {"run_json": origin["run_json"], "run_id": origin["run_id"], "dataset_hash": origin["dataset_hash"],
              "dataset_hash_now": dataset_hash, "same_data": None if changed else origin["dataset_hash"] == dataset_hash}
    if changed:
        record["not_compared"] = f"data settings changed: {', '.join(changed)}"
        return record, None
    if record["same_data"]:
        return record, None
    return record, (f"warning: {origin['run_json']} recorded dataset hash {origin['dataset_hash']}, but {cfg.dataset} "
                    f"now hashes to {dataset_hash}: its images changed since run {origin['run_id']}, so its numbers "
                    "will not be reproduced (both hashes are recorded in run.json)")
