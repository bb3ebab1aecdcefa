"""Shared pytest fixtures.

Tests use real data only. CIFAR-10 comes from the project's JPEG copy in
``<repo>/../shared/data/cifar10-jpeg.tar.gz`` (CI clones the repo with
``shared/`` beside it); a small subset of it is written in torchvision's
pickle layout once per session.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CIFAR10_JPEG_ARCHIVE = SHARED / "data" / "cifar10-jpeg.tar.gz"
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]

# Images per class in the small copy: 100 x 10 = 1000 train (200 per batch
# file x 5), 20 x 10 = 200 test.
CIFAR10_SMALL_TRAIN_PER_CLASS = 100
CIFAR10_SMALL_TEST_PER_CLASS = 20


def _cifar_subset(tar: tarfile.TarFile, members, split: str, per_class: int):
    """The first ``per_class`` JPEGs of each class (sorted by name), decoded."""
    from PIL import Image

    chosen = {c: [] for c in CIFAR10_CLASSES}
    for m in sorted(members, key=lambda m: m.name):
        parts = m.name.split("/")  # cifar10-jpeg/<split>/<class>/<nnnn>.jpg
        if (
            len(parts) == 4
            and parts[1] == split
            and m.isfile()
            and parts[2] in chosen
            and len(chosen[parts[2]]) < per_class
        ):
            chosen[parts[2]].append(m)
    picked = [(m, label) for label, c in enumerate(CIFAR10_CLASSES) for m in chosen[c]]
    # Read in archive order: forward seeks in a gzip stream are cheap, backward
    # ones restart decompression from the beginning.
    picked.sort(key=lambda ml: ml[0].offset_data)
    rows, labels = [], []
    for m, label in picked:
        img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
        # (32, 32, 3) -> R plane, G plane, B plane, as in the official files.
        rows.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).reshape(-1))
        labels.append(label)
    # Mix the classes, as the real batch files do.
    order = np.random.default_rng(0).permutation(len(rows))
    return np.stack(rows)[order], [labels[i] for i in order]


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory) -> Path:
    """A root holding a small real-format ``cifar-10-batches-py`` folder.

    Decoded from the real JPEG archive: 5 train batch files of 200 images and
    a test batch of 200, every class present in each split.
    """
    if not CIFAR10_JPEG_ARCHIVE.is_file():
        pytest.skip(
            f"CIFAR-10 JPEG archive not found at {CIFAR10_JPEG_ARCHIVE}"
            " (expected the shared/ folder beside the repository)"
        )
    root = tmp_path_factory.mktemp("cifar10")
    out = root / "cifar-10-batches-py"
    out.mkdir()
    with tarfile.open(CIFAR10_JPEG_ARCHIVE) as tar:
        members = tar.getmembers()
        train, train_y = _cifar_subset(tar, members, "train", CIFAR10_SMALL_TRAIN_PER_CLASS)
        test, test_y = _cifar_subset(tar, members, "test", CIFAR10_SMALL_TEST_PER_CLASS)
    per_file = len(train) // 5
    for b in range(5):
        s = slice(b * per_file, (b + 1) * per_file)
        with open(out / f"data_batch_{b + 1}", "wb") as f:
            pickle.dump(
                {
                    "batch_label": f"training batch {b + 1} of 5",
                    "labels": train_y[s],
                    "data": train[s],
                },
                f,
                protocol=4,
            )
    with open(out / "test_batch", "wb") as f:
        pickle.dump(
            {"batch_label": "testing batch 1 of 1", "labels": test_y, "data": test}, f, protocol=4
        )
    return root
