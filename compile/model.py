"""The TCN encoder of the trained TCN-VAE: 9 IMU channels x 100 steps -> 64-d latent (``fc_mu``).

Parameter names match the trained model (``network.{i}.conv1/conv2/downsample``, ``fc_mu``) so checkpoints and
ONNX initializers map onto it by name. Convolutions hold plain weights: weight norm is folded when loading.
"""

import torch
from torch import nn

from bundle_contract.tensors import INPUT_CHANNELS, LATENT_SIZE

BLOCK_CHANNELS = (64, 128, 256)
KERNEL_SIZE = 3
DILATIONS = (1, 2, 4)
DEFAULT_SEED = 20251125


class TemporalBlock(nn.Module):
    """Two causal dilated convolutions (symmetric padding, then chomp the tail) plus a 1x1 residual."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.chomp = (KERNEL_SIZE - 1) * dilation
        self.conv1 = nn.Conv1d(in_channels, out_channels, KERNEL_SIZE, padding=self.chomp, dilation=dilation)
        self.conv2 = nn.Conv1d(out_channels, out_channels, KERNEL_SIZE, padding=self.chomp, dilation=dilation)
        self.downsample = nn.Conv1d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.conv1(x)[..., : -self.chomp])
        out = torch.relu(self.conv2(out)[..., : -self.chomp])
        return torch.relu(out + self.downsample(x))


class TCNEncoder(nn.Module):
    """Input ``[N, 9, T]`` z-scored channels-first, output ``[N, 64]`` (the VAE mean)."""

    def __init__(self) -> None:
        super().__init__()
        widths = (INPUT_CHANNELS, *BLOCK_CHANNELS)
        self.network = nn.Sequential(
            *(TemporalBlock(widths[i], widths[i + 1], DILATIONS[i]) for i in range(len(BLOCK_CHANNELS)))
        )
        self.fc_mu = nn.Linear(BLOCK_CHANNELS[-1], LATENT_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_mu(self.network(x).mean(dim=-1))


def seeded_encoder(seed: int = DEFAULT_SEED) -> TCNEncoder:
    """The untrained default: the same architecture with weights from a fixed seed (PyTorch's init)."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        encoder = TCNEncoder()
    finally:
        torch.random.set_rng_state(generator_state)
    return encoder.eval()
