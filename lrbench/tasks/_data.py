"""Datasets: find them on disk, read and validate them, split and batch them.

This module stops at integer arrays as stored on disk (uint8 pixels, int64
labels). Converting to float, normalising and moving to a device belong to the
tasks.

Readers never fall back to synthetic data: a missing dataset raises
:class:`~lrbench.errors.DataNotFoundError` naming every place searched and how
to get the files; a damaged one raises :class:`~lrbench.errors.CorruptDataError`
naming the file and what is wrong with it.

Batching follows the project's performance rules: the whole split lives on the
training device as one tensor, and an epoch is a sequence of index slices of one
on-device permutation, so there is no DataLoader, no per-sample Python and no
host synchronisation per step.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from lrbench.errors import ConfigError, CorruptDataError, DataNotFoundError

__all__ = [
    "FASHION_MNIST_DEBIAN_DIR",
    "ArraySplits",
    "search_roots",
    "read_fashion_mnist",
    "read_cifar10",
    "read_digits",
    "holdout_split",
    "TensorSplit",
    "shuffled_batches",
    "steps_per_epoch",
    "ordered_batches",
]

#: Where Debian's package ``dataset-fashion-mnist`` installs the four IDX files.
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Environment variable naming an extra folder to search for datasets.
DATA_ENV = "LRBENCH_DATA"

NUM_CLASSES = 10
# CIFAR-10's label names in label order (batches.meta's `label_names`).
CIFAR10_CLASSES = (
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
)


@dataclass(frozen=True)
class ArraySplits:
    """Arrays as read from disk, on the CPU (numpy).

    ``train_x``/``test_x``: uint8, Fashion-MNIST (N, 28, 28), CIFAR-10
    (N, 3, 32, 32); for digits float32 (N, 64) with values in [0, 16].
    ``train_y``/``test_y``: int64 (N,).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def search_roots(data_root=None, defaults: Iterable = ()) -> list[Path]:
    """Folders to search for a dataset, most specific first.

    Order: the explicit ``data_root`` (str or PathLike) if given, then
    ``$LRBENCH_DATA`` if set and non-empty, then ``defaults``. ``~`` is
    expanded; a folder appearing twice is kept only at its first place.
    """
    candidates = []
    if data_root is not None:
        candidates.append(data_root)
    env = os.environ.get(DATA_ENV)
    if env:
        candidates.append(env)
    candidates.extend(defaults)
    roots: list[Path] = []
    for c in candidates:
        p = Path(c).expanduser()
        if p not in roots:
            roots.append(p)
    return roots


def _shown(path: Path) -> str:
    """A path as error messages show it: absolute, so the user can find it."""
    return os.path.abspath(path)


def _default_download_root(data_root) -> Path:
    """Where ``download=True`` puts files: the first root, else ~/.cache/lrbench."""
    return search_roots(data_root, defaults=[Path.home() / ".cache" / "lrbench"])[0]


# --------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_FASHION_SIDE = 28
_FASHION_FILES = {
    # split: (images file, labels file)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION_NAMES = [name for pair in _FASHION_FILES.values() for name in pair]


def _fashion_dirs(root: Path) -> list[Path]:
    """Folders inside one root that may hold the IDX files.

    torchvision's layout first (``ROOT/FashionMNIST/raw``), then the root
    itself, which is how Debian installs them.
    """
    return [root / "FashionMNIST" / "raw", root]


def _find_idx(folder: Path, name: str) -> Path | None:
    # Prefer the uncompressed file: torchvision keeps both after extracting,
    # and the plain one is faster to read.
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_file_bytes(path: Path) -> bytes:
    """The file's contents, gunzipped if its name ends in ``.gz``.

    Every read failure becomes a CorruptDataError naming the file.
    """
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with open(path, "rb") as f:
            head = f.read(2)
        # Check the magic ourselves so a plain file misnamed .gz gets a clear
        # message rather than gzip's "Not a gzipped file (b'..')".
        if head != b"\x1f\x8b":
            raise CorruptDataError(
                f"{path}: not a gzip file (starts with 0x{head.hex() or 'nothing'},"
                " expected 0x1f8b); if it is an uncompressed IDX file, drop the .gz suffix"
            )
        with gzip.open(path, "rb") as f:
            return f.read()
    except EOFError as e:
        raise CorruptDataError(f"{path}: truncated gzip stream ({e})") from None
    except gzip.BadGzipFile as e:
        raise CorruptDataError(f"{path}: damaged gzip file ({e})") from None
    except zlib.error as e:
        raise CorruptDataError(f"{path}: damaged gzip data ({e})") from None
    except OSError as e:
        raise CorruptDataError(f"{path}: cannot read: {e}") from None


def _parse_idx(path: Path, data: bytes, images: bool) -> np.ndarray:
    """Parse one IDX file of unsigned bytes and check its header against its size.

    IDX: a big-endian uint32 magic (0x0000, type 0x08 = ubyte, number of
    dimensions), one big-endian uint32 per dimension, then the payload.
    """
    expected = _IDX_IMAGES_MAGIC if images else _IDX_LABELS_MAGIC
    kind = "images" if images else "labels"
    ndim = expected & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise CorruptDataError(
            f"{path}: truncated: {len(data)} bytes, too short for an IDX header"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        raise CorruptDataError(
            f"{path}: bad magic number 0x{magic:08x}, expected {expected}"
            f" (0x{expected:08x}, IDX {kind} file)"
        )
    if len(data) < header_len:
        raise CorruptDataError(
            f"{path}: truncated: {len(data)} bytes, the IDX {kind} header needs {header_len}"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    n = dims[0]
    if images and dims[1:] != [_FASHION_SIDE, _FASHION_SIDE]:
        raise CorruptDataError(
            f"{path}: images are {dims[1]}x{dims[2]}, expected {_FASHION_SIDE}x{_FASHION_SIDE}"
        )
    item = int(np.prod(dims[1:], dtype=np.int64))  # bytes per image or label
    need = n * item
    have = len(data) - header_len
    if have != need:
        problem = "truncated" if have < need else "trailing bytes"
        if images:
            raise CorruptDataError(
                f"{path}: {problem}: header says {n} images of"
                f" {_FASHION_SIDE}x{_FASHION_SIDE} ({need} bytes), file holds {have} bytes"
                f" ({have / item:g} images)"
            )
        raise CorruptDataError(f"{path}: {problem}: header says {n} labels, file holds {have}")
    # frombuffer over bytes is read-only; copy so callers may write (and
    # torch.from_numpy does not warn).
    arr = np.frombuffer(data, dtype=np.uint8, offset=header_len).copy()
    if images:
        return arr.reshape(n, _FASHION_SIDE, _FASHION_SIDE)
    bad = np.flatnonzero(arr >= NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise CorruptDataError(
            f"{path}: label {int(arr[i])} out of range 0..{NUM_CLASSES - 1}"
            f" (at index {i}; {bad.size} bad labels in all)"
        )
    return arr.astype(np.int64)


def _read_fashion_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    x = _parse_idx(images_path, _read_file_bytes(images_path), images=True)
    y = _parse_idx(labels_path, _read_file_bytes(labels_path), images=False)
    if len(x) != len(y):
        raise CorruptDataError(
            f"{images_path} holds {len(x)} images but {labels_path} holds"
            f" {len(y)} labels; the two files must come from the same release"
        )
    return x, y


def _refuse_fallback(data_root, folder: Path | None, tried: list[str], name: str) -> None:
    """A `data_root` given explicitly must hold the data: found elsewhere is an error, not a
    silent fallback to another copy."""
    if data_root is None or folder is None:
        return
    root = Path(data_root).expanduser().resolve()
    if root == folder.resolve() or root in folder.resolve().parents:
        return
    raise DataNotFoundError(
        f"--data-root {_shown(Path(data_root))} does not hold {name} (looked in:\n"
        + "\n".join(line for line in tried if _shown(Path(data_root)) in line)
        + f")\nA copy was found in {_shown(folder)}: drop --data-root (or data_root) to use it,"
        " or put the complete files in the folder you named."
    )


def _locate_fashion(roots: list[Path]) -> tuple[Path | None, list[str]]:
    """The first folder holding all four files, and a line per folder tried."""
    tried: list[str] = []
    for root in roots:
        for folder in _fashion_dirs(root):
            found = {name: _find_idx(folder, name) for name in _FASHION_NAMES}
            missing = [name for name, p in found.items() if p is None]
            if not missing:
                return folder, tried
            note = ""
            if len(missing) < len(_FASHION_NAMES):  # partly there: say what lacks
                note = f"  (incomplete: missing {', '.join(missing)})"
            tried.append(f"  {_shown(folder)}{note}")
    return None, tried


def _read_fashion_folder(folder: Path) -> ArraySplits:
    # `folder` was located holding all four files.
    paths = cast(dict[str, Path], {name: _find_idx(folder, name) for name in _FASHION_NAMES})
    tx, ty = _read_fashion_split(*(paths[n] for n in _FASHION_FILES["train"]))
    vx, vy = _read_fashion_split(*(paths[n] for n in _FASHION_FILES["test"]))
    return ArraySplits(train_x=tx, train_y=ty, test_x=vx, test_y=vy)


def read_fashion_mnist(data_root=None, download: bool = False) -> ArraySplits:
    """Read Fashion-MNIST's official IDX files.

    Searches ``search_roots(data_root, defaults=[FASHION_MNIST_DEBIAN_DIR])``;
    in each root, ``ROOT/FashionMNIST/raw/`` (torchvision's layout) and then
    ``ROOT/`` itself (Debian's flat folder). Each file may be plain or ``.gz``.
    The first folder holding all four files wins.

    With ``download=True`` and nothing found, torchvision downloads the files
    into the first root (``$LRBENCH_DATA`` or ``~/.cache/lrbench`` when no
    root is given); they are then read with the same parser.

    Returns uint8 images (N, 28, 28) and int64 labels in 0..9.
    Raises DataNotFoundError or CorruptDataError.
    """
    # Read the module constant at call time so tests can monkeypatch it.
    roots = search_roots(data_root, defaults=[FASHION_MNIST_DEBIAN_DIR])
    folder, tried = _locate_fashion(roots)
    _refuse_fallback(data_root, folder, tried, "Fashion-MNIST")
    if folder is None and download:
        target = _default_download_root(data_root)
        _torchvision_download(
            "FashionMNIST", target, "sudo apt-get install dataset-fashion-mnist (Debian)"
        )
        folder, more = _locate_fashion([target])
        tried += more
        if folder is None:
            raise DataNotFoundError(
                f"Fashion-MNIST download into {_shown(target)} finished but the IDX"
                f" files are not in {_shown(target / 'FashionMNIST' / 'raw')}"
            )
    if folder is None:
        files = ", ".join(_FASHION_NAMES)
        raise DataNotFoundError(
            "Fashion-MNIST not found. Looked for "
            f"{files} (each plain or .gz) in:\n" + "\n".join(tried) + "\n"
            "Get it with one of:\n"
            "  sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu; installs into"
            f" {FASHION_MNIST_DEBIAN_DIR})\n"
            "  lrbench ... --download   (torchvision; needs internet)\n"
            f"or point --data-root or ${DATA_ENV} at a folder that holds the files."
        )
    return _read_fashion_folder(folder)


def _torchvision_download(name: str, root: Path, offline_hint: str) -> None:
    """Download a dataset with torchvision into ``root``; errors become DataNotFoundError."""
    import torchvision  # late: slow to import and only needed here

    cls = getattr(torchvision.datasets, name)
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError
        raise DataNotFoundError(
            f"could not download {name} into {_shown(root)}: {e}\n"
            f"--download needs internet access. Without it: {offline_hint},"
            f" or point --data-root or ${DATA_ENV} at a folder that holds the files."
        ) from None


# --------------------------------------------------------------------------
# CIFAR-10 (torchvision's python pickles)
# --------------------------------------------------------------------------

CIFAR10_DIRNAME = "cifar-10-batches-py"
_CIFAR_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST_FILE = "test_batch"
_CIFAR_ROW = 3 * 32 * 32

# Globals an honest CIFAR-10 pickle needs (numpy arrays, from numpy 1 or 2,
# pickled by Python 2 or 3). Anything else is refused: unpickling arbitrary
# globals would let a data file run code.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol < 3
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    try:
        with open(path, "rb") as f:
            obj = _DataUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise CorruptDataError(f"{path}: cannot read: {e}") from None
    except Exception as e:  # garbage bytes can fail in many ways inside pickle
        raise CorruptDataError(
            f"{path}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise CorruptDataError(
            f"{path}: expected a dict with 'data' and 'labels', got {type(obj).__name__}"
        )
    # The official files were pickled by Python 2: keys come back as bytes.
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise CorruptDataError(
            f"{path}: missing key {', '.join(repr(k) for k in missing)}"
            f" (has {', '.join(repr(k) for k in batch)})"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        what = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise CorruptDataError(f"{path}: 'data' must be a uint8 array, got {what}")
    if data.ndim != 2 or data.shape[1] != _CIFAR_ROW:
        raise CorruptDataError(
            f"{path}: 'data' has shape {data.shape}, expected (N, {_CIFAR_ROW})"
        )
    try:
        labels = np.asarray(batch["labels"])
    except Exception as e:
        raise CorruptDataError(f"{path}: 'labels' is not a list of ints ({e})") from None
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise CorruptDataError(
            f"{path}: 'labels' must be a flat list of ints, got shape {labels.shape}"
            f" of {labels.dtype}"
        )
    labels = labels.astype(np.int64)
    if len(labels) != len(data):
        raise CorruptDataError(f"{path}: {len(data)} images but {len(labels)} labels")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise CorruptDataError(
            f"{path}: label {int(labels[i])} out of range 0..{NUM_CLASSES - 1}"
            f" (at index {i}; {bad.size} bad labels in all)"
        )
    # Each row is the R plane, then G, then B, each a row-major 32x32 image.
    return data.reshape(-1, 3, 32, 32), labels


def _locate_cifar(roots: list[Path]) -> tuple[Path | None, list[str]]:
    tried: list[str] = []
    for root in roots:
        folder = root / CIFAR10_DIRNAME
        missing = [
            n for n in _CIFAR_TRAIN_FILES + [_CIFAR_TEST_FILE] if not (folder / n).is_file()
        ]
        if not missing:
            return folder, tried
        note = ""
        if len(missing) < len(_CIFAR_TRAIN_FILES) + 1:
            note = f"  (incomplete: missing {', '.join(missing)})"
        tried.append(f"  {_shown(folder)}{note}")
    return None, tried


def read_cifar10(data_root=None, download: bool = False) -> ArraySplits:
    """Read CIFAR-10 from torchvision's python layout.

    Looks for ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}`` under
    ``search_roots(data_root, defaults=[~/.cache/lrbench])``. The pickles are
    read directly (torchvision's CIFAR10 class insists on the official md5
    sums, which the local JPEG-derived copy lacks).

    With ``download=True`` and nothing found, torchvision downloads the
    official files into the first root.

    Returns uint8 images (N, 3, 32, 32) and int64 labels in 0..9.
    Raises DataNotFoundError or CorruptDataError.
    """
    roots = search_roots(data_root, defaults=[Path.home() / ".cache" / "lrbench"])
    folder, tried = _locate_cifar(roots)
    _refuse_fallback(data_root, folder, tried, "CIFAR-10")
    if folder is None and download:
        target = _default_download_root(data_root)
        _torchvision_download(
            "CIFAR10",
            target,
            f"python ../shared/tools/cifar10_from_jpeg.py {_shown(target)} (this project's"
            " JPEG copy)",
        )
        folder, more = _locate_cifar([target])
        tried += more
        if folder is None:
            raise DataNotFoundError(
                f"CIFAR-10 download into {_shown(target)} finished but"
                f" {_shown(target / CIFAR10_DIRNAME)} is incomplete"
            )
    if folder is None:
        raise DataNotFoundError(
            f"CIFAR-10 not found. Looked for {CIFAR10_DIRNAME}/"
            f"{{{','.join(_CIFAR_TRAIN_FILES)},{_CIFAR_TEST_FILE}}} in:\n"
            + "\n".join(tried)
            + "\n"
            "Get it with one of:\n"
            "  lrbench ... --download   (torchvision, official files; needs internet)\n"
            f"  python ../shared/tools/cifar10_from_jpeg.py {_shown(roots[0])}"
            "   (expands this project's JPEG copy, ../shared/data/cifar10-jpeg.tar.gz)\n"
            f"or point --data-root or ${DATA_ENV} at a folder that holds {CIFAR10_DIRNAME}/."
        )
    train = [_read_cifar_batch(folder / n) for n in _CIFAR_TRAIN_FILES]
    test_x, test_y = _read_cifar_batch(folder / _CIFAR_TEST_FILE)
    return ArraySplits(
        train_x=np.concatenate([x for x, _ in train]),
        train_y=np.concatenate([y for _, y in train]),
        # Unpickled arrays are normally writable; copy only if this one is not.
        test_x=test_x if test_x.flags.writeable else test_x.copy(),
        test_y=test_y,
    )


# --------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------


def read_digits(test_size: int = 360, seed: int = 0) -> ArraySplits:
    """scikit-learn's bundled 8x8 digits (1797 images), split once, stratified.

    ``x`` is float32 (N, 64) with values 0..16, ``y`` int64. The split is
    ``train_test_split(test_size=test_size, random_state=seed, stratify=y)``,
    so it is fixed for a given seed.
    """
    from sklearn.datasets import load_digits  # late: sklearn is slow to import
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    try:
        tx, vx, ty, vy = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    except ValueError as e:
        raise ConfigError(f"digits: cannot hold out test_size={test_size!r}: {e}") from None
    return ArraySplits(train_x=tx, train_y=ty, test_x=vx, test_y=vy)


# --------------------------------------------------------------------------
# Splitting and batching
# --------------------------------------------------------------------------


def holdout_split(n: int, n_val: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train_idx, val_idx), ``n_val`` of them held out.

    A fixed permutation from ``np.random.default_rng(seed)``: the same
    arguments always give the same split. Both index arrays are sorted int64,
    disjoint, and together cover ``range(n)``.
    """
    if not 0 <= n_val <= n:
        raise ConfigError(
            f"validation size {n_val} is out of range: the training set has {n} examples"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass
class TensorSplit:
    """Inputs and (optional) labels of one split, as tensors on one device.

    ``y`` is None for unlabelled data (e.g. a VAE's inputs).
    """

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __post_init__(self):
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"TensorSplit: {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def steps_per_epoch(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Number of batches :func:`shuffled_batches` yields for ``n`` examples.

    With ``drop_last`` a split smaller than one batch still gives one batch,
    so an epoch is never empty (unless ``n`` is 0).
    """
    _check_batch_size(batch_size)
    if n <= 0:
        return 0
    if drop_last:
        return max(1, n // batch_size)
    return -(-n // batch_size)


def shuffled_batches(
    split: TensorSplit,
    batch_size: int,
    generator: torch.Generator,
    drop_last: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """One training epoch of ``(x, y)`` batches in a random order.

    The permutation is drawn on ``split.x``'s device with ``generator``
    (which must live on that device), and each batch gathers a consecutive
    slice of it: no host synchronisation, no per-sample Python. ``y`` is None
    when the split has no labels. With ``drop_last`` the last partial batch is
    dropped, except that a split smaller than ``batch_size`` yields one batch
    of everything. The count matches :func:`steps_per_epoch`.
    """
    _check_batch_size(batch_size)
    n = len(split)
    perm = torch.randperm(n, generator=generator, device=split.x.device)
    # Python ints only from here on, so nothing waits for the device.
    steps = steps_per_epoch(n, batch_size, drop_last)
    for i in range(steps):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        yield split.x[idx], (split.y[idx] if split.y is not None else None)


def ordered_batches(
    split: TensorSplit, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Consecutive ``(x, y)`` slices in order, last partial batch kept: for evaluation.

    Slices are views, so nothing is copied.
    """
    _check_batch_size(batch_size)
    for start in range(0, len(split), batch_size):
        end = start + batch_size
        yield split.x[start:end], (split.y[start:end] if split.y is not None else None)
