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


# --------------------------------------------------------------------------------------------- #
# A throw-away PostgreSQL server on a loopback port, for the distributed-run tests
# --------------------------------------------------------------------------------------------- #
def _postgres_bin() -> Path | None:
    """The folder of Debian's (or any) PostgreSQL server binaries, newest version first."""
    import shutil

    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return found[0].parent if found else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as `nobody`."""
    import os

    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server():
    """(host, port) of a PostgreSQL server started for this session in a temporary folder."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _postgres_bin()
    if bindir is None:
        why = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI") == "true":  # CI installs them: their absence is a failure
            pytest.fail(why)
        pytest.skip(why)
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL unprivileged")
    folder = Path(tempfile.mkdtemp(prefix="lrbench-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = (
        lambda *cmd: subprocess.run(  # noqa: E731
            _as_server_user([str(bindir / cmd[0]), *cmd[1:]]), check=True, capture_output=True
        )
    )
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    except subprocess.CalledProcessError as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {e.stderr.decode(errors='replace')[-300:]}")
    yield "127.0.0.1", port
    run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A new, empty database on the session's server; its SQLAlchemy URL."""
    import re

    import psycopg

    host, port = postgres_server
    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    with psycopg.connect(f"host={host} port={port} user=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@{host}:{port}/{name}"


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test: the population engine's members then sum their
    products in a lone trial's order (bit-identical results)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
