"""``bench data fetch NAME``: download a dataset where it is hosted on the Hugging Face hub, else say
exactly how to get it by hand.

Downloads go through ``huggingface_hub.snapshot_download`` into a plain folder (the data store's
``<BENCH_DATA_DIR>/<name>``, or ``--to DIR``), so an interrupted fetch resumes where it stopped and
the folder is what ``--dataset NAME`` (or ``NAME=DIR``) reads. Archives a card marks ``unzip`` are
extracted in place once, then removed. Offline mode (``BENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``)
refuses before any network access, with the manual steps.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.core.environment import is_offline, offline_reason
from bench.core.errors import BenchError
from bench.data.store import dataset_dir

_UNZIPPED = ".unzipped"


@dataclass(frozen=True)
class FetchPlan:
    name: str
    repos: tuple[str, ...]  # Hugging Face dataset repositories; empty when the dataset is not hosted there
    patterns: tuple[str, ...] | None  # allow_patterns for snapshot_download
    unzip: bool
    manual: str  # the steps by hand


def plan_for(name: str) -> FetchPlan:
    """What fetching ``name`` (a registered dataset or ``hf:ORG/NAME``) means."""
    if name.startswith("hf:"):
        from bench.data.hf_parquet import parse_hf_spec

        spec = parse_hf_spec(name)
        return FetchPlan(f"hf:{spec.repo}", (spec.repo,), ("*.parquet", "README.md"), False,
                         f"huggingface-cli download --repo-type dataset {spec.repo} --include '*.parquet' "
                         f"--local-dir {dataset_dir(f'hf:{spec.repo}')}")
    from bench.core.registries import DATASETS, load_plugins

    load_plugins()
    meta = DATASETS.entry(name).meta
    if not meta.get("adapter"):
        raise BenchError(f"dataset {name!r} is built in: nothing to fetch")
    hosted = meta.get("hf") or ()
    repos = (hosted,) if isinstance(hosted, str) else tuple(hosted)
    files = meta.get("hf_files")
    return FetchPlan(name, repos, tuple(files) if files else None, bool(meta.get("unzip")), meta.get("get", ""))


def manual_instructions(plan: FetchPlan, dest: Path, chosen: bool) -> str:
    then = (f"unpack it into {dest} and run with --dataset {plan.name}={dest}" if chosen else
            f"run with --dataset {plan.name}=YOUR_FOLDER (or unpack it into {dest} and use --dataset {plan.name})")
    return f"{plan.name} is not on the Hugging Face hub; get it by hand:\n  {plan.manual}\nthen {then}"


def _unzip_all(folder: Path) -> None:
    for archive in sorted(folder.rglob("*.zip")):
        marker = archive.with_name(archive.name + _UNZIPPED)
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(archive.parent)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BenchError(f"cannot unzip {archive}: {exc} (rerun the fetch to resume the download)") from None
        marker.touch()
        archive.unlink()


def fetch_dataset(name: str, to: Path | None = None) -> tuple[Path, str | None]:
    """Download ``name`` into ``to`` (default: its data-store folder). Returns (folder, None) after a
    download, or (folder, manual instructions) when the dataset is not on the hub."""
    plan = plan_for(name)
    dest = (to or dataset_dir(plan.name)).expanduser()
    if not plan.repos:
        return dest, manual_instructions(plan, dest, to is not None)
    if is_offline():
        raise BenchError(f"{plan.name}: offline mode is on ({offline_reason()}); fetching needs the network. "
                         f"By hand: {plan.manual}")
    from huggingface_hub import snapshot_download

    dest.mkdir(parents=True, exist_ok=True)
    for repo in plan.repos:
        target = dest / repo.split("/")[-1] if len(plan.repos) > 1 else dest
        if plan.unzip and any(target.rglob("*" + _UNZIPPED)):
            continue  # fetched and extracted before
        try:
            snapshot_download(repo_id=repo, repo_type="dataset", local_dir=str(target),
                              allow_patterns=list(plan.patterns) if plan.patterns else None)
        except Exception as exc:  # network, authentication, gated repository: one line, with the way round
            raise BenchError(f"{plan.name}: downloading {repo} failed: {type(exc).__name__}: {exc}. "
                             f"Rerun to resume, or by hand: {plan.manual}") from None
        if plan.unzip:
            _unzip_all(target)
    return dest, None
