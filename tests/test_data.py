"""Tests for lrbench.tasks._data: real files only (Debian's Fashion-MNIST, the JPEG copy of CIFAR-10)."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import lrbench.tasks._data as data
from lrbench.errors import ConfigError, CorruptDataError, DataNotFoundError
from lrbench.tasks._data import (
    ArraySplits,
    TensorSplit,
    holdout_split,
    ordered_batches,
    read_cifar10,
    read_digits,
    read_fashion_mnist,
    search_roots,
    shuffled_batches,
    steps_per_epoch,
)

DEBIAN_DIR = data.FASHION_MNIST_DEBIAN_DIR
FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    # A developer's own $LRBENCH_DATA must not leak into the search order.
    monkeypatch.delenv("LRBENCH_DATA", raising=False)


@pytest.fixture(scope="module")
def fmnist() -> ArraySplits:
    if not all((DEBIAN_DIR / f"{n}.gz").is_file() for n in FASHION_FILES):
        pytest.skip(
            f"Fashion-MNIST not installed in {DEBIAN_DIR} (apt-get install dataset-fashion-mnist)"
        )
    return read_fashion_mnist(DEBIAN_DIR)


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes holding ``arr`` (labels 1-d, images 3-d)."""
    magic = 2049 if arr.ndim == 1 else 2051
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write_fashion(
    folder: Path, fm: ArraySplits, n_train: int, n_test: int, gz: bool = False
) -> dict[str, Path]:
    """Write the first n_train/n_test real examples as the four IDX files."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [fm.train_x[:n_train], fm.train_y[:n_train], fm.test_x[:n_test], fm.test_y[:n_test]]
    paths = {}
    for name, arr in zip(FASHION_FILES, arrays):
        raw = idx_bytes(arr)
        path = folder / (f"{name}.gz" if gz else name)
        path.write_bytes(gzip.compress(raw, compresslevel=1) if gz else raw)
        paths[name] = path
    return paths


# ---------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_debian_folder(fmnist):
    assert fmnist.train_x.shape == (60000, 28, 28) and fmnist.train_x.dtype == np.uint8
    assert fmnist.test_x.shape == (10000, 28, 28) and fmnist.test_x.dtype == np.uint8
    assert fmnist.train_y.shape == (60000,) and fmnist.train_y.dtype == np.int64
    assert fmnist.test_y.shape == (10000,) and fmnist.test_y.dtype == np.int64
    # Fashion-MNIST is balanced: 6000 / 1000 of each of the 10 classes.
    assert np.bincount(fmnist.train_y).tolist() == [6000] * 10
    assert np.bincount(fmnist.test_y).tolist() == [1000] * 10
    assert fmnist.train_x.max() == 255 and fmnist.train_x.min() == 0
    assert fmnist.train_x.flags.writeable


def test_fashion_mnist_default_search_finds_debian(fmnist):
    got = read_fashion_mnist()
    assert np.array_equal(got.test_y, fmnist.test_y)
    assert got.train_x.shape == (60000, 28, 28)


def test_fashion_mnist_torchvision_layout_gives_identical_arrays(fmnist, tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FASHION_FILES:  # gunzip the real files, as torchvision leaves them
        (raw / name).write_bytes(gzip.decompress((DEBIAN_DIR / f"{name}.gz").read_bytes()))
    got = read_fashion_mnist(tmp_path)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(getattr(got, field), getattr(fmnist, field)), field


def test_search_roots_order_and_duplicates(monkeypatch, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert search_roots(defaults=[c]) == [c]
    monkeypatch.setenv("LRBENCH_DATA", str(b))
    assert search_roots(str(a), defaults=[c]) == [a, b, c]
    assert search_roots(a, defaults=[b, c, a]) == [a, b, c]
    assert search_roots(None, defaults=[c]) == [b, c]
    monkeypatch.setenv("LRBENCH_DATA", "")  # set but empty: ignored
    assert search_roots(a) == [a]


def test_fashion_mnist_root_precedence(fmnist, tmp_path, monkeypatch):
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    write_fashion(explicit / "FashionMNIST" / "raw", fmnist, 100, 50)
    write_fashion(env, fmnist, 200, 60, gz=True)  # flat, gzipped, like Debian
    monkeypatch.setenv("LRBENCH_DATA", str(env))
    got = read_fashion_mnist(explicit)
    assert (len(got.train_y), len(got.test_y)) == (100, 50)
    got = read_fashion_mnist()
    assert (len(got.train_y), len(got.test_y)) == (200, 60)
    assert np.array_equal(got.train_x, fmnist.train_x[:200])
    # An explicit root without the files is refused, naming the copy that would have been used.
    with pytest.raises(DataNotFoundError, match="does not hold Fashion-MNIST") as e:
        read_fashion_mnist(tmp_path / "empty")
    assert str(env) in str(e.value)
    monkeypatch.delenv("LRBENCH_DATA")
    assert len(read_fashion_mnist().train_y) == 60000


def _truncate(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:-n])


def _set_bytes(path: Path, offset: int, new: bytes) -> None:
    b = bytearray(path.read_bytes())
    b[offset : offset + len(new)] = new
    path.write_bytes(bytes(b))


def _gz_of(path: Path, raw: bytes) -> None:
    path.write_bytes(gzip.compress(raw, compresslevel=1))


CORRUPTIONS = {
    # name: (file to damage, gzipped?, damage, words the message must contain)
    "truncated images": (
        "train-images-idx3-ubyte",
        False,
        lambda p: _truncate(p, 28 * 28 * 3),
        ["truncated", "header says 100 images", "97 images"],
    ),
    "truncated labels in gz": (
        "train-labels-idx1-ubyte",
        True,
        lambda p: _gz_of(p, gzip.decompress(p.read_bytes())[:-10]),
        ["truncated: header says 100 labels, file holds 90"],
    ),
    "trailing bytes": (
        "t10k-labels-idx1-ubyte",
        False,
        lambda p: p.write_bytes(p.read_bytes() + b"\0"),
        ["trailing bytes", "header says 50 labels, file holds 51"],
    ),
    "wrong magic": (
        "t10k-labels-idx1-ubyte",
        False,
        lambda p: _set_bytes(p, 0, b"\0\0\0\0"),
        ["bad magic number 0x00000000, expected 2049"],
    ),
    "images magic in labels file": (
        "train-labels-idx1-ubyte",
        False,
        lambda p: _set_bytes(p, 0, (2051).to_bytes(4, "big")),
        ["bad magic number 0x00000803, expected 2049"],
    ),
    "wrong image size": (
        "t10k-images-idx3-ubyte",
        False,
        lambda p: _set_bytes(p, 12, (27).to_bytes(4, "big")),
        ["images are 28x27, expected 28x28"],
    ),
    "label out of range": (
        "train-labels-idx1-ubyte",
        False,
        lambda p: _set_bytes(p, 8 + 5, bytes([12])),
        ["label 12 out of range 0..9", "index 5"],
    ),
    "gz that is not gzip": (
        "train-images-idx3-ubyte",
        True,
        lambda p: p.write_bytes(gzip.decompress(p.read_bytes())),
        ["not a gzip file"],
    ),
    "truncated gzip stream": (
        "t10k-images-idx3-ubyte",
        True,
        lambda p: _truncate(p, 100),
        ["truncated gzip stream"],
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_fashion_mnist_corrupt_file(fmnist, tmp_path, case):
    name, gz, damage, words = CORRUPTIONS[case]
    paths = write_fashion(tmp_path, fmnist, 100, 50, gz=gz)
    damage(paths[name])
    with pytest.raises(CorruptDataError) as err:
        read_fashion_mnist(tmp_path)
    msg = str(err.value)
    assert str(paths[name]) in msg
    for w in words:
        assert w in msg


def test_fashion_mnist_count_mismatch(fmnist, tmp_path):
    paths = write_fashion(tmp_path, fmnist, 100, 50)
    paths["train-labels-idx1-ubyte"].write_bytes(idx_bytes(fmnist.train_y[:99]))
    with pytest.raises(CorruptDataError, match="100 images .* 99 labels"):
        read_fashion_mnist(tmp_path)


def test_fashion_mnist_missing_names_every_place(tmp_path, monkeypatch):
    explicit, env, debian = tmp_path / "explicit", tmp_path / "env", tmp_path / "no-debian"
    explicit.mkdir()
    env.mkdir()
    monkeypatch.setenv("LRBENCH_DATA", str(env))
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_DIR", debian)
    # One file present in the env root: the message should say what is missing there.
    (env / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataNotFoundError) as err:
        read_fashion_mnist(explicit)
    msg = str(err.value)
    for root in (explicit, env, debian):
        assert str(root / "FashionMNIST" / "raw") in msg
        assert f"  {root}\n" in msg or f"  {root}  (" in msg
    assert "incomplete: missing train-labels-idx1-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--download" in msg and "LRBENCH_DATA" in msg and "--data-root" in msg


# ---------------------------------------------------------------- CIFAR-10


def _load_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


def test_cifar10_reads_pickles(cifar10_root):
    got = read_cifar10(cifar10_root)
    assert got.train_x.shape == (1000, 3, 32, 32) and got.train_x.dtype == np.uint8
    assert got.test_x.shape == (200, 3, 32, 32) and got.test_x.dtype == np.uint8
    assert got.train_y.dtype == np.int64 and got.test_y.dtype == np.int64
    assert np.bincount(got.train_y, minlength=10).tolist() == [100] * 10
    assert np.bincount(got.test_y, minlength=10).tolist() == [20] * 10
    # Rows are R, G, B planes of a row-major 32x32 image: check the reshape.
    b3 = _load_batch(cifar10_root / "cifar-10-batches-py" / "data_batch_3")
    row = b3["data"][7]
    img = got.train_x[2 * 200 + 7]
    assert np.array_equal(img[0], row[:1024].reshape(32, 32))
    assert np.array_equal(img[2], row[2048:].reshape(32, 32))
    assert got.train_y[2 * 200 + 7] == b3["labels"][7]
    assert got.test_x.flags.writeable and got.train_x.flags.writeable


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar10_accepts_bytes_keys_and_any_protocol(cifar10_root, tmp_path, protocol):
    # The official files come from Python 2: bytes keys, old protocol.
    src = cifar10_root / "cifar-10-batches-py"
    dst = tmp_path / "cifar-10-batches-py"
    dst.mkdir()
    for f in src.iterdir():
        batch = _load_batch(f)
        with open(dst / f.name, "wb") as out:
            pickle.dump({k.encode(): v for k, v in batch.items()}, out, protocol=protocol)
    a, b = read_cifar10(cifar10_root), read_cifar10(tmp_path)
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)


def _copy_cifar(cifar10_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(cifar10_root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    return tmp_path / "cifar-10-batches-py"


def _rewrite(path: Path, change) -> None:
    batch = _load_batch(path)
    change(batch)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=4)


def _set_label(batch, value):
    batch["labels"][3] = value


CIFAR_CORRUPTIONS = {
    "garbage bytes": (
        "data_batch_3",
        lambda p: p.write_bytes(b"\x80\x04garbage" * 10),
        ["not a readable CIFAR-10 pickle"],
    ),
    "empty file": (
        "data_batch_2",
        lambda p: p.write_bytes(b""),
        ["not a readable CIFAR-10 pickle"],
    ),
    "missing labels": (
        "test_batch",
        lambda p: _rewrite(p, lambda b: b.pop("labels")),
        ["missing key 'labels'"],
    ),
    "label 10": (
        "data_batch_1",
        lambda p: _rewrite(p, lambda b: _set_label(b, 10)),
        ["label 10 out of range 0..9", "index 3"],
    ),
    "label count": (
        "data_batch_4",
        lambda p: _rewrite(p, lambda b: b["labels"].pop()),
        ["200 images but 199 labels"],
    ),
    "wrong shape": (
        "data_batch_5",
        lambda p: _rewrite(p, lambda b: b.update(data=b["data"][:, :3000])),
        ["shape (200, 3000)", "expected (N, 3072)"],
    ),
    "wrong dtype": (
        "test_batch",
        lambda p: _rewrite(p, lambda b: b.update(data=b["data"].astype(np.float32))),
        ["uint8", "float32"],
    ),
    "not a dict": (
        "data_batch_1",
        lambda p: p.write_bytes(pickle.dumps([1, 2, 3])),
        ["expected a dict", "list"],
    ),
    # A pickle naming any other global could run code: it is refused, not executed.
    "foreign global": (
        "data_batch_2",
        lambda p: p.write_bytes(pickle.dumps(ConfigError("x"))),
        ["refusing to load global lrbench.errors.ConfigError"],
    ),
}


@pytest.mark.parametrize("case", list(CIFAR_CORRUPTIONS))
def test_cifar10_corrupt_file(cifar10_root, tmp_path, case):
    name, damage, words = CIFAR_CORRUPTIONS[case]
    folder = _copy_cifar(cifar10_root, tmp_path)
    damage(folder / name)
    with pytest.raises(CorruptDataError) as err:
        read_cifar10(tmp_path)
    msg = str(err.value)
    assert str(folder / name) in msg
    for w in words:
        assert w in msg


def test_cifar10_missing_names_every_place(tmp_path, monkeypatch):
    explicit, env, home = tmp_path / "explicit", tmp_path / "env", tmp_path / "home"
    monkeypatch.setenv("LRBENCH_DATA", str(env))
    monkeypatch.setenv("HOME", str(home))  # the default root is ~/.cache/lrbench
    (env / "cifar-10-batches-py").mkdir(parents=True)
    (env / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    with pytest.raises(DataNotFoundError) as err:
        read_cifar10(explicit)
    msg = str(err.value)
    for root in (explicit, env, home / ".cache" / "lrbench"):
        assert str(root / "cifar-10-batches-py") in msg
    assert "incomplete: missing data_batch_1" in msg
    assert f"cifar10_from_jpeg.py {explicit}" in msg
    assert "--download" in msg


# ---------------------------------------------------------------- digits


def test_digits_shapes_and_stratified_split():
    d = read_digits()
    assert d.train_x.shape == (1437, 64) and d.test_x.shape == (360, 64)
    assert d.train_x.dtype == np.float32 and d.train_y.dtype == np.int64
    assert d.train_x.min() == 0 and d.train_x.max() == 16
    # Stratified: each class's share of the test set matches its share overall.
    all_y = np.concatenate([d.train_y, d.test_y])
    expected = np.bincount(all_y) * 360 / len(all_y)
    assert np.all(np.abs(np.bincount(d.test_y, minlength=10) - expected) <= 1)
    again = read_digits()
    assert np.array_equal(d.test_x, again.test_x) and np.array_equal(d.train_y, again.train_y)
    assert not np.array_equal(read_digits(seed=1).test_y, d.test_y)
    assert read_digits(test_size=100).test_x.shape == (100, 64)


# ---------------------------------------------------------------- splitting and batching


def test_holdout_split():
    train, val = holdout_split(1000, 100, seed=3)
    assert len(val) == 100 and len(train) == 900
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    t2, v2 = holdout_split(1000, 100, seed=3)
    assert np.array_equal(train, t2) and np.array_equal(val, v2)
    assert not np.array_equal(val, holdout_split(1000, 100, seed=4)[1])
    assert len(holdout_split(10, 0)[1]) == 0 and len(holdout_split(10, 10)[0]) == 0
    with pytest.raises(ConfigError, match="11"):
        holdout_split(10, 11)


def _split(n: int, labels: bool = True) -> TensorSplit:
    x = torch.arange(n).unsqueeze(1).repeat(1, 3)  # row i holds i: values are indices
    return TensorSplit(x, x[:, 0] * 2 if labels else None)


@pytest.mark.parametrize(
    "n,bs,drop_last,sizes",
    [
        (103, 10, True, [10] * 10),
        (103, 10, False, [10] * 10 + [3]),
        (100, 10, True, [10] * 10),
        (7, 10, True, [7]),  # smaller than a batch: one batch, never an empty epoch
        (7, 10, False, [7]),
        (0, 10, True, []),
    ],
)
def test_shuffled_batches_cover_each_index_at_most_once(n, bs, drop_last, sizes):
    split = _split(n)
    g = torch.Generator().manual_seed(0)
    batches = list(shuffled_batches(split, bs, g, drop_last=drop_last))
    assert [len(x) for x, _ in batches] == sizes
    assert steps_per_epoch(n, bs, drop_last) == len(batches)
    seen = torch.cat([x[:, 0] for x, _ in batches]) if batches else torch.empty(0)
    assert len(torch.unique(seen)) == len(seen)  # no index twice in an epoch
    if not drop_last or n < bs:
        assert sorted(seen.tolist()) == list(range(n))
    for x, y in batches:
        assert x.shape[1:] == (3,)
        assert torch.equal(y, x[:, 0] * 2)  # labels stay with their inputs


def test_shuffled_batches_deterministic_and_on_device_permutation():
    split = _split(50, labels=False)

    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        return [x for x, _ in shuffled_batches(split, 8, g)]

    a, b = epoch(1), epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, epoch(2)))
    # The order is exactly torch.randperm on the data's device with that generator.
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.cat(a)[:, 0], perm[:48])
    g = torch.Generator().manual_seed(1)
    it = shuffled_batches(split, 8, g)
    x, y = next(it)
    assert y is None and x.device == split.x.device
    # Consecutive epochs on one generator draw fresh permutations.
    assert not torch.equal(torch.cat([x for x, _ in shuffled_batches(split, 8, g)]), torch.cat(a))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_shuffled_batches_on_cuda_without_host_sync():
    split = TensorSplit(
        torch.arange(1000, device="cuda").float().unsqueeze(1), torch.arange(1000, device="cuda")
    )
    g = torch.Generator(device="cuda").manual_seed(0)
    torch.cuda.set_sync_debug_mode("error")  # any host sync raises
    try:
        batches = list(shuffled_batches(split, 64, g))
        evals = list(ordered_batches(split, 64))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(batches) == steps_per_epoch(1000, 64) == 15
    assert all(x.is_cuda and y.is_cuda for x, y in batches)
    assert len(evals) == 16


@pytest.mark.parametrize(
    "n,bs,drop_last,expected",
    [
        (60000, 128, True, 468),
        (60000, 128, False, 469),
        (50, 64, True, 1),
        (50, 64, False, 1),
        (64, 64, True, 1),
        (65, 64, True, 1),
        (0, 64, False, 0),
    ],
)
def test_steps_per_epoch(n, bs, drop_last, expected):
    assert steps_per_epoch(n, bs, drop_last) == expected
    g = torch.Generator().manual_seed(0)
    assert len(list(shuffled_batches(_split(n), bs, g, drop_last))) == expected


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        steps_per_epoch(10, 0)
    with pytest.raises(ValueError):
        next(ordered_batches(_split(10), 0))


def test_ordered_batches_cover_everything_in_order():
    split = _split(23)
    batches = list(ordered_batches(split, 5))
    assert [len(x) for x, _ in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([x for x, _ in batches]), split.x)
    assert torch.equal(torch.cat([y for _, y in batches]), split.y)
    assert [y for _, y in ordered_batches(_split(4, labels=False), 3)] == [None, None]


def test_tensor_split_len_and_mismatch():
    assert len(_split(12)) == 12
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        TensorSplit(torch.zeros(3, 2), torch.zeros(2))
