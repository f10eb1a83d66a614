"""Folder helpers shared by the adapters: find the expected folders (case-insensitively, also one level
down, where an archive unpacks into a folder of its own) and say exactly what is missing when they
are not there."""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.data.manifest import Row, images_under


def missing(dataset: str, root: Path, what: str, expected: str) -> BenchError:
    return BenchError(f"{dataset}: {root} has no {what!r} folder; expected {expected}")


def child(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name`` (any case), or None."""
    if not folder.is_dir():
        return None
    exact = folder / name
    if exact.is_dir():
        return exact
    wanted = name.lower()
    return next((p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() == wanted), None)


def descend(folder: Path, *names: str) -> Path | None:
    for name in names:
        found = child(folder, name)
        if found is None:
            return None
        folder = found
    return folder


def locate(root: Path, marker: str, wrappers: tuple[str, ...] = ()) -> Path:
    """``root`` itself when it holds ``marker``; else the first wrapper folder (``root/<wrapper>``) or
    the only sub-folder of ``root`` that does: archives often unpack into a folder of their own."""
    if child(root, marker) is not None:
        return root
    candidates = [child(root, w) for w in wrappers]
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    if len(subdirs) == 1:
        candidates.append(subdirs[0])
    return next((c for c in candidates if c is not None and child(c, marker) is not None), root)


def require(dataset: str, root: Path, rel: str, expected: str) -> Path:
    """``root/rel`` (a '/'-separated path matched case-insensitively); a BenchError naming it when absent."""
    found = descend(root, *rel.split("/"))
    if found is None:
        raise missing(dataset, root, rel, expected)
    return found


def image_rows(root: Path, folder: Path, label: int, generator: str, split: str | None = None,
               group_of=None, subset: str | None = None) -> list[Row]:
    """One row per image under ``folder`` (recursively), ids relative to ``root``; ``subset`` marks real
    images that belong to one generator's folder (see :class:`bench.data.manifest.Row`)."""
    return [Row(p.relative_to(root).as_posix(), str(p.resolve()), label, "real" if label == 0 else generator,
                None, split, group_of(p) if group_of else None, subset if label == 0 else None)
            for p in images_under(folder)]


def real_fake_rows(dataset: str, root: Path, folder: Path, generator: str, split: str | None = None) -> list[Row]:
    """Rows of a CNNDet-style folder: ``0_real/`` + ``1_fake/``, directly or in per-class sub-folders
    (ProGAN's 20 LSUN classes, CycleGAN's horse/zebra ...); the reals belong to ``generator``'s subset."""
    direct = (child(folder, "0_real"), child(folder, "1_fake"))
    if all(direct):
        return (image_rows(root, direct[0], 0, generator, split, subset=generator)
                + image_rows(root, direct[1], 1, generator, split))
    classes = [d for d in sorted(folder.iterdir()) if d.is_dir() and child(d, "0_real") and child(d, "1_fake")]
    if not classes:
        rel = folder.relative_to(root).as_posix() if folder != root else "."
        raise BenchError(f"{dataset}: {root / rel} has no '0_real' and '1_fake' folders (directly or in "
                         "per-class sub-folders)")
    return [row for d in classes for row in real_fake_rows(dataset, root, d, generator, split)]


def nonempty(dataset: str, root: Path, rows: list[Row]) -> list[Row]:
    if not rows:
        raise BenchError(f"{dataset}: no images found under {root}")
    return rows
