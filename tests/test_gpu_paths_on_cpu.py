"""What a GPU run of cifar10 does that a CPU run does not, executed on the CPU before any GPU
is lent: bf16 autocast, channels_last images and weights, and `torch.compile` (the inductor
backend), each against the eager float32 contiguous path at a stated tolerance. The task's
`precision` and `memory_format` options choose them on any device ("auto": on CUDA only)."""

from __future__ import annotations

import shutil

import pytest
import torch

from lrbench.errors import ConfigError
from lrbench.tasks import DataOptions, get_task
from lrbench.training import TrainConfig, train

CPU = torch.device("cpu")
SMALL = {"width": 4, "batch_size": 64}


def prepared(cifar10_root, **options):
    task = get_task("cifar10", **SMALL, **options)
    return task, task.prepare(CPU, DataOptions(str(cifar10_root)))


def first_logits(task, data) -> torch.Tensor:
    """The task's prepared model (seed 0) on 128 validation images, in evaluation mode,
    under the task's autocast, as float32."""
    torch.manual_seed(0)
    model = task.prepare_model(task.build_model(), CPU)
    model.eval()
    with torch.no_grad(), task.autocast(CPU):
        return model(data.val.x[:128]).float()


def test_the_options_default_to_the_gpu_only_and_refuse_other_values():
    task = get_task("cifar10", **SMALL)
    assert task.options["precision"] == task.options["memory_format"] == "auto"
    assert not torch.is_autocast_enabled("cpu")
    with task.autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")  # "auto" on a CPU: float32
    with get_task("cifar10", **SMALL, precision="bf16").autocast(CPU):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ConfigError, match="precision must be auto, bf16 or float32"):
        get_task("cifar10", precision="fp8")
    with pytest.raises(ConfigError, match="memory_format must be auto, channels_last"):
        get_task("cifar10", memory_format="nhwc")


def test_channels_last_computes_what_contiguous_does(cifar10_root):
    """Same weights, same images, another memory layout: another summation order, float32
    rounding only (stated tolerance: 1e-4 of the logits' scale)."""
    nchw_task, nchw = prepared(cifar10_root, memory_format="contiguous")
    nhwc_task, nhwc = prepared(cifar10_root, memory_format="channels_last")
    assert nhwc.train.x.is_contiguous(memory_format=torch.channels_last)
    assert not nchw.train.x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(nhwc.val.x, nchw.val.x)  # the same values, laid out otherwise
    a, b = first_logits(nchw_task, nchw), first_logits(nhwc_task, nhwc)
    scale = float(a.abs().max())
    assert torch.allclose(a, b, rtol=0, atol=1e-4 * scale), float((a - b).abs().max())
    # One epoch through lrbench's training path in each layout ends where float32 allows.
    cfg = TrainConfig.for_task(nchw_task, epochs=1, seed=0)
    ra, rb = train(nchw_task, cfg, data=nchw), train(nhwc_task, cfg, data=nhwc)
    assert ra.history[0].train_loss == pytest.approx(rb.history[0].train_loss, rel=1e-3)


def test_bf16_autocast_computes_float32s_logits_to_bf16_precision_and_trains(cifar10_root):
    """bf16 keeps 8 bits of mantissa (relative rounding 2^-9 a value); through the net's eight
    layers the logits stay within 5% of their scale of float32's (stated tolerance), and the
    net trains under it: an epoch lowers the loss from ln 10, as in float32."""
    f32_task, f32 = prepared(cifar10_root, precision="float32")
    bf16_task, bf16 = prepared(cifar10_root, precision="bf16")
    a, b = first_logits(f32_task, f32), first_logits(bf16_task, bf16)
    assert not torch.equal(a, b)  # bf16 did run: the results differ
    scale = float(a.abs().max())
    assert float((a - b).abs().max()) <= 0.05 * scale
    cfg = TrainConfig.for_task(f32_task, epochs=2, seed=0)
    r32, r16 = train(f32_task, cfg, data=f32), train(bf16_task, cfg, data=bf16)
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in r16.history)
    assert r16.history[-1].train_loss < 2.30  # below ln 10: it learned
    assert r16.history[-1].train_loss == pytest.approx(r32.history[-1].train_loss, rel=0.05)


@pytest.mark.skipif(shutil.which("cc") is None, reason="inductor compiles C++ with the system cc")
def test_torch_compile_on_the_cpu_computes_the_eager_logits(cifar10_root, tmp_path, monkeypatch):
    """`compile=true` wraps the net in `torch.compile` (inductor on the CPU: generated C++):
    the same logits as eager to float32 rounding (stated tolerance: 1e-4 of their scale)."""
    # A cache of its own: inductor's cache does not tell PyTorch's kernel sets apart, and a
    # precompiled header left by a run with other ATEN_CPU_CAPABILITY fails to compile.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    eager_task, data = prepared(cifar10_root)
    compiled_task = get_task("cifar10", **SMALL, compile=True)
    torch.manual_seed(0)
    compiled = compiled_task.prepare_model(compiled_task.build_model(), CPU)
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    compiled.eval()
    with torch.no_grad():
        b = compiled(data.val.x[:128])
    a = first_logits(eager_task, data)
    scale = float(a.abs().max())
    assert torch.allclose(a, b, rtol=0, atol=1e-4 * scale), float((a - b).abs().max())
