"""`fmnist_vae`: an MLP VAE on Fashion-MNIST; the metric is the negative ELBO in nats per image.

Pixels are intensities in [0, 1] with a Bernoulli likelihood (logits), one latent sample per
image, a 10-d Gaussian latent with a standard normal prior; the encoder is `layers` ReLU layers
of `hidden` units, the decoder mirrors it. Validation: 10,000 of the 60,000 training images,
held out with seed 0; the noise of the validation ELBO comes from a fixed generator so the same
weights always give the same number.

Calibration. design.md asks for details with which a good fixed rate reaches the target NLL 235
on the validation split in roughly 50-100 epochs. Measured on a 2-core CPU (Adam, fixed rate,
one latent sample, the validation ELBO as above; best validation NLL in nats/image):

    2 x 500, batch 64, lr 5e-4:   237.39 @ 26, 236.36 @ 45, 235.91 @ 62, best 235.72 @ 88 (stopped @ 92)
    2 x 512, batch 128, lr 1e-3:  236.97 @ 45, 236.80 @ 52 (stopped)
    3 x 512, batch 32, lr 3e-4:   238.89 @ 31 (behind 2 x 500 at the same epoch; stopped)
    2 x 1024, batch 64, lr 5e-4:  238.05 @ 18, 236.36 @ 30, 235.96 @ 40, 235.47 @ 60, best 235.33 @ 70,
                                  flat to 100 (235.33)
    2 x 1024, batch 64, lr 1e-3:  237.59 @ 22, 237.20 @ 34 (behind 5e-4 at both epochs; stopped)

Width is what helps: training and validation losses stay level (the model underfits), and
2 x 1024 runs about 20 epochs ahead of 2 x 500. It is the default. Still, no fixed rate measured
here reached 235 within 100 epochs. The target stays 235 as design.md sets it (whether a
schedule gets there is what the benchmark measures), and a wider sweep on a GPU (hidden
1024-2048, 2-3 layers, rates 3e-4..2e-3) is the open calibration step. The runs above used a
standalone script of the same model and loss (its own 10,000-image holdout, seed 0); with
lrbench: `lrbench train fmnist_vae --lr 5e-4 --epochs 100`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrbench.data import TensorSplit, ordered_batches, read_fashion_mnist
from lrbench.tasks.base import DataOptions, Task, TaskData, subset


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, hidden: int, layers: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = _mlp([784] + [hidden] * layers + [2 * z_dim])
        self.decoder = _mlp([z_dim] + [hidden] * layers + [784])

    def negative_elbo(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Per-image -ELBO in nats: Bernoulli reconstruction term plus the analytic Gaussian KL."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + noise * torch.exp(0.5 * logvar)
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)
        return rec + kl


class FashionMnistVAE(Task):
    name = "fmnist_vae"
    description = "Fashion-MNIST MLP VAE (z=10), negative ELBO in nats/image"
    metric = "nll"
    metric_unit = "nats/image"
    direction = "minimize"
    default_target = 235.0
    default_optimizer = "adam"
    default_lr = 5e-4
    default_epochs = 100
    batch_size = 64
    diverge_factor = 4.0
    option_defaults = {
        "hidden": 1024,
        "layers": 2,
        "z_dim": 10,
        "batch_size": 64,
        "val_size": 10000,
    }

    def load(self, device: torch.device, data: DataOptions) -> TaskData:
        arrays = read_fashion_mnist(data.data_root, download=data.download)
        x = torch.as_tensor(arrays.train_x.reshape(len(arrays.train_x), 784))
        tr, va = self.holdout(len(x))
        # uint8 -> float on the device, once: the whole set lives there (188 MB as float32).
        to_float = lambda t: t.to(device).float().div_(255.0)  # noqa: E731
        train = subset(TensorSplit(to_float(x[tr]), None), data.train_subset)
        val = TensorSplit(to_float(x[va]), None)
        test = TensorSplit(to_float(torch.as_tensor(arrays.test_x.reshape(-1, 784))), None)
        return TaskData(train, val, test, self.steps_per_epoch_for(train))

    def build_model(self) -> nn.Module:
        return VAE(
            int(self.options["hidden"]), int(self.options["layers"]), int(self.options["z_dim"])
        )

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, _ = batch
        noise = torch.randn(x.shape[0], model.z_dim, device=x.device)
        return model.negative_elbo(x, noise).mean()

    def evaluate(self, model: nn.Module, split: TensorSplit) -> torch.Tensor:
        # Fixed noise: the metric is a deterministic function of the weights.
        g = torch.Generator(device=split.x.device).manual_seed(12345)
        total = torch.zeros((), device=split.x.device)
        for x, _ in ordered_batches(split, 10000):
            noise = torch.randn(x.shape[0], model.z_dim, device=x.device, generator=g)
            total += model.negative_elbo(x, noise).sum()
        return total / len(split)
