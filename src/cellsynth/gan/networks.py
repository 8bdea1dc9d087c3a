"""Generator and discriminator of the conditional GAN (section 2 of Eschweiler et al. 2021).

The generator is a 3D U-Net whose decoder upsamples by a 3D pixel shuffle. Its input is
the structure mask and the positional map (Eq. 1); its output is one image channel with a
sigmoid. The discriminator is a 3D PatchGAN that sees an image and the positional map.

Normalization: the generator has **no normalization layers**. Instance or group norm
compute statistics over the patch, so a voxel's value would depend on which tile it falls
in and stitched volumes would show seams. Without them every output voxel
is a fixed function of the inputs inside its receptive field (:attr:`UNetGenerator.halo`):
tiles cropped by the halo stitch exactly. A small network with Kaiming initialisation,
LeakyReLU and RAdam trains stably without normalization.

Artifacts, measured on the generators shipped before (issue 17): they drew a period-2
checkerboard (spectral peaks 7-50 times their neighbours, with constant input and with the
noise switched off, so from the upsampling path) and a band along the volume border (the
first planes at 0.46 of the mean; gone when the input was mirrored instead of zero-padded).
Two settings remove the causes:

- ``upsample_blur``: a fixed binomial [1, 2, 1] / 4 filter along each axis after every
  pixel shuffle. The shuffle gives each of the 8 sub-voxels its own weights, so any
  difference between them repeats every 2 voxels; the filter has zero response at that
  frequency (a zero-order hold twice, Sugawara et al. 2019), so a constant input gives a
  constant output whatever the weights learn. ICNR initialization (Aitken et al. 2017)
  only starts the weights equal; training moves them apart.
- ``padding``: the 3x3x3 convolutions repeat the edge voxels (``"replicate"``) instead of padding with zeros,
  so voxels near a patch side see image-like context in training and at synthesis, and
  the tiler mirrors the input at the volume border (:func:`cellsynth.tiling.synthesize_tiled`).

Optional noise injection (as in StyleGAN): a standard normal noise volume, scaled per
channel by learned weights (initialised to :data:`NOISE_INIT`), is added at full
resolution before the last decoder block. It lets the generator draw camera-like noise
texture. At inference :class:`cellsynth.render.gan.GeneratorModel` draws that noise per
global voxel, so it too is independent of the tiling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NOISE_INIT = 0.1
"""Initial per-channel scale of the injected noise. StyleGAN starts at 0; with the few
thousand steps of a CPU training the scale then grows too slowly (Adam moves a weight by
about the learning rate per step), so the noise starts small but present."""


def pixel_shuffle_3d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Rearrange ``(N, C*f**3, Z, Y, X)`` into ``(N, C, Z*f, Y*f, X*f)``.

    The 3D analogue of :func:`torch.nn.functional.pixel_shuffle`: channel
    ``c*f**3 + (i*f + j)*f + k`` becomes the sub-voxel ``(i, j, k)`` of output channel ``c``.
    """
    n, c, z, y, x_ = x.shape
    f = factor
    if c % f**3:
        raise ValueError(f"channels ({c}) must be a multiple of factor**3 ({f**3})")
    out = x.reshape(n, c // f**3, f, f, f, z, y, x_)
    out = out.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return out.reshape(n, c // f**3, z * f, y * f, x_ * f)


def parameter_count(network: Callable[[int], nn.Module], width: int) -> int:
    """Parameters of ``network(width)``, found without building it at that width.

    In these networks every layer has channels proportional to the width or fixed, so the
    parameter count is a quadratic polynomial in the width: three networks of width 1, 2
    and 3 give it exactly for any width (a generator file or a training option that asks for
    an enormous network is then refused before anything is allocated).

    Examples
    --------
    >>> build = lambda w: UNetGenerator(width=w, depth=2)
    >>> parameter_count(build, 24) == sum(p.numel() for p in build(24).parameters())
    True
    """
    c1, c2, c3 = (sum(p.numel() for p in network(w).parameters()) for w in (1, 2, 3))
    return c1 + (width - 1) * (c2 - c1) + (width - 1) * (width - 2) // 2 * (c3 - 2 * c2 + c1)


class PixelShuffle3d(nn.Module):
    """Module form of :func:`pixel_shuffle_3d`."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(x, self.factor)


PADDINGS = ("zeros", "reflect", "replicate")
"""Padding modes of the generator's 3x3x3 convolutions."""


def _conv_block(c_in: int, c_out: int, padding: str = "zeros") -> nn.Sequential:
    """Two 3x3x3 convolutions with LeakyReLU (no normalization; see module notes)."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, padding=1, padding_mode=padding), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv3d(c_out, c_out, 3, padding=1, padding_mode=padding), nn.LeakyReLU(0.2, inplace=True),
    )


class BinomialBlur3d(nn.Module):
    """Fixed low-pass ``[1, 2, 1] / 4`` along z, y and x, per channel, edges replicated.

    Its response ``cos(w / 2) ** 2`` is 0 at the Nyquist frequency, so it removes any
    pattern of period 2, such as the checkerboard of a pixel shuffle.

    Examples
    --------
    >>> checker = (torch.arange(8)[:, None, None] + torch.arange(8)[:, None] + torch.arange(8)) % 2
    >>> out = BinomialBlur3d()(checker.float().view(1, 1, 8, 8, 8))
    >>> float(out[0, 0, 1:-1, 1:-1, 1:-1].std())
    0.0
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis in (2, 3, 4):
            n = x.shape[axis]
            padded = torch.cat([x.narrow(axis, 0, 1), x, x.narrow(axis, n - 1, 1)], dim=axis)
            x = 0.25 * (padded.narrow(axis, 0, n) + padded.narrow(axis, 2, n)) + 0.5 * x
        return x


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv3d):
        nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
        nn.init.zeros_(module.bias)


def _icnr_(conv: nn.Conv3d, factor: int = 2) -> None:
    """ICNR initialization (Aitken et al. 2017) of a convolution followed by a pixel shuffle.

    All ``factor**3`` sub-voxels of an output channel start with the same weights, so the
    shuffle starts as nearest-neighbour upsampling: no checkerboard artefacts.
    """
    out_channels = conv.out_channels // factor**3
    base = torch.empty(out_channels, *conv.weight.shape[1:])
    nn.init.kaiming_normal_(base, a=0.2, nonlinearity="leaky_relu")
    with torch.no_grad():
        conv.weight.copy_(base.repeat_interleave(factor**3, dim=0))
        conv.bias.zero_()


class UNetGenerator(nn.Module):
    """3D U-Net with pixel-shuffle upsampling and a sigmoid output.

    Parameters
    ----------
    in_channels
        Input channels: structure mask and positional map (2).
    width
        Channels of the first level; level ``l`` has ``width * 2**l``.
    depth
        Number of 2x downsamplings. Patch sides must be multiples of ``2**depth``.
    out_channels
        Output image channels (1).
    noise
        Inject learned-scale Gaussian noise at full resolution (see module notes).
    padding
        Padding mode of the 3x3x3 convolutions, one of :data:`PADDINGS`.
    upsample_blur
        A :class:`BinomialBlur3d` after every pixel shuffle (see module notes).

    Examples
    --------
    >>> g = UNetGenerator(width=4, depth=2)
    >>> g(torch.zeros(1, 2, 8, 16, 16)).shape
    torch.Size([1, 1, 8, 16, 16])
    """

    def __init__(self, in_channels: int = 2, width: int = 16, depth: int = 3, out_channels: int = 1,
                 noise: bool = False, padding: str = "replicate", upsample_blur: bool = True) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be positive, got depth={depth}, width={width}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.config = {"in_channels": in_channels, "width": width, "depth": depth, "out_channels": out_channels,
                       "noise": noise, "padding": padding, "upsample_blur": upsample_blur}
        self.depth, self.upsample_blur = depth, upsample_blur
        widths = [width * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList([_conv_block(in_channels, widths[0], padding)])
        self.downs = nn.ModuleList()
        for level in range(depth):
            self.downs.append(nn.Sequential(nn.Conv3d(widths[level], widths[level], 2, stride=2),
                                            nn.LeakyReLU(0.2, inplace=True)))
            self.encoders.append(_conv_block(widths[level], widths[level + 1], padding))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            blur = [BinomialBlur3d()] if upsample_blur else []
            self.ups.append(nn.Sequential(nn.Conv3d(widths[level + 1], widths[level] * 8, 1), PixelShuffle3d(2),
                                          *blur, nn.LeakyReLU(0.2, inplace=True)))
            self.decoders.append(_conv_block(2 * widths[level], widths[level], padding))
        self.head = nn.Conv3d(widths[0], out_channels, 1)
        self.apply(_init_weights)
        for up in self.ups:
            _icnr_(up[0])
        self.noise_weight = nn.Parameter(torch.full((2 * widths[0],), NOISE_INIT)) if noise else None

    @property
    def size_multiple(self) -> int:
        """Each patch side must be a multiple of this."""
        return 2**self.depth

    @property
    def halo(self) -> int:
        """Receptive-field radius in voxels (exact for this architecture, per axis).

        Level ``l`` works on a grid of spacing ``2**l``: each 3x3x3 convolution there
        widens the field by ``2**l`` voxels on each side, each 2x2x2 strided downsampling
        by up to ``2**l``; the 1x1x1 convolution and the pixel shuffle add nothing beyond
        the sub-voxel offset, counted with the downsampling; the upsampling blur of level
        ``l + 1`` adds ``2**l``.
        """
        encoder = sum(2 * 2**level + 2**level for level in range(self.depth))
        bottleneck = 2 * 2**self.depth
        decoder = sum((3 if self.upsample_blur else 2) * 2**level for level in range(self.depth))
        return encoder + bottleneck + decoder

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, logits: bool = False) -> torch.Tensor:
        """Map ``(N, in_channels, Z, Y, X)`` to ``(N, out_channels, Z, Y, X)`` in (0, 1).

        ``noise`` (``(N, 1, Z, Y, X)``, standard normal) is used where the network was built
        with ``noise=True``; it is drawn from torch's generator when omitted. ``logits``
        returns the values before the sigmoid (for a numerically safe cross-entropy).
        """
        m = self.size_multiple
        if any(s % m for s in x.shape[2:]):
            raise ValueError(f"patch sides {tuple(x.shape[2:])} must be multiples of {m} (2**depth)")
        skips = []
        h = x
        for level in range(self.depth):
            h = self.encoders[level](h)
            skips.append(h)
            h = self.downs[level](h)
        h = self.encoders[self.depth](h)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            h = torch.cat([up(h), skip], dim=1)
            if decoder is self.decoders[-1] and self.noise_weight is not None:
                if noise is None:
                    noise = torch.randn((h.shape[0], 1, *h.shape[2:]), device=h.device, dtype=h.dtype)
                h = h + self.noise_weight.view(1, -1, 1, 1, 1).to(h.dtype) * noise.to(h.dtype)
            h = decoder(h)
        out = self.head(h)
        return out if logits else torch.sigmoid(out)


class PatchGAN3D(nn.Module):
    """3D PatchGAN discriminator (pix2pix style) on an image and its positional map.

    Each output voxel scores one overlapping patch of the input as real (> 0) or fake
    (< 0); the scores are raw (no sigmoid), as the ADA statistic needs.

    Parameters
    ----------
    in_channels
        Image and positional map (2).
    width
        Channels of the first layer, doubled at each strided layer (capped at 8x).
    layers
        Number of strided (stride 2) layers.
    norm
        ``"instance"`` or ``"none"``. Only the discriminator may normalize over the
        patch: it is not used at inference.
    """

    def __init__(self, in_channels: int = 2, width: int = 16, layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be 'instance' or 'none', got {norm!r}")
        self.config = {"in_channels": in_channels, "width": width, "layers": layers, "norm": norm}
        blocks: list[nn.Module] = [nn.Conv3d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(1, layers + 1):
            c_out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks.append(nn.Conv3d(c, c_out, 4, stride=stride, padding=1))
            if norm == "instance":
                blocks.append(nn.InstanceNorm3d(c_out, affine=True))
            blocks.append(nn.LeakyReLU(0.2, True))
            c = c_out
        blocks.append(nn.Conv3d(c, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*blocks)
        self.apply(_init_weights)

    def forward(self, image: torch.Tensor, positional: torch.Tensor) -> torch.Tensor:
        """Raw patch scores for ``image`` (N, 1, ...) conditioned on ``positional`` (N, 1, ...)."""
        return self.model(torch.cat([image, positional], dim=1))
