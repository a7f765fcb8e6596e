"""MobileNetV1 (Howard et al. 2017) with a width multiplier, as pruned by Zhu & Gupta (2017).

TF-slim's ``mobilenet_v1``: a 3x3 convolution stem (stride 2), 13 depthwise-separable blocks
(depthwise 3x3 + BN + ReLU6, then pointwise 1x1 + BN + ReLU6), global average pooling, dropout
(keep 0.999) and the logits, TF-slim's 1x1 convolution with bias on the pooled 1x1 map, which is
a fully-connected layer with bias (``nn.Linear``). Batch norm as TF-slim's
``mobilenet_v1_arg_scope``: centre and scale (``affine=True``), decay 0.9997 (PyTorch momentum
0.0003; ``bn_momentum`` sets another for short runs), epsilon 0.001. Channels are ``max(int(c * width), 8)`` as in TF-slim (all widths of the
paper, 1.0/0.75/0.5/0.25, give whole numbers, so no further rounding is involved). Deviations:
weights start from torchvision's MobileNetV2 scheme (He-normal convolutions, N(0, 0.01) logits),
not TF-slim's truncated normal of stddev 0.09, and stride-2 convolutions pad symmetrically (TF's
``SAME`` pads the bottom/right side only).

NNZ (``gradprune.counting.count_nnz``: connections, i.e. convolution kernels and the logits'
weight and bias; batch norm's scale and shift, 21,888 at width 1.0, are not connections).
Measured, 1000 classes:

==========  ===========  ==========  ==========================================
width       sparsity     NNZ         paper
==========  ===========  ==========  ==========================================
1.0         0            4,210,088   4.21M
1.0         0.5          2,128,296   2.13M
1.0         0.75         1,087,400   1.09M
1.0         0.9            462,861   0.46M
1.0         0.95           254,682   0.25M
0.75        0            2,569,144   2.59M (a `recollection` row; 2.57M, 0.8% below)
0.5         0            1,320,648   1.32M
0.25        0              464,600   0.46M
==========  ===========  ==========  ==========================================

Pruning spec (:data:`PRUNE_INCLUDE`): every 1x1 pointwise convolution and the logits' weight; the
stem convolution and the depthwise convolutions stay dense (46,504 connections at width 1.0 with
the logits' bias), as do batch-norm parameters.

``small_input=True`` (28x28 Fashion-MNIST, 32x32 CIFAR-10): the stem has stride 1 and the 12th
block (512 -> 1024) stride 1, so the network downsamples by 8 instead of 32 (28 -> 14 -> 7 -> 4,
32 -> 16 -> 8 -> 4; the last two blocks and the pooling see a 4x4 map). Strides do not change any
weight shape, so parameter and NNZ counts are those above (for the chosen ``in_channels`` and
``num_classes``).

``output_stride=16`` (the mini on 28x28 Fashion-MNIST): TF-slim's ``mobilenet_v1_base`` rule, once
the maps are 16 times smaller than the input no further layer strides, so the 12th block keeps
its input's 2x2 map instead of going to 1x1 (28 -> 14 -> 7 -> 4 -> 2, the last two blocks on
2x2). TF-slim then dilates the following convolutions (atrous rate 2); this implementation does
not: on a 2x2 map a 3x3 kernel of rate 2 sees only its centre and padding. Measured on the mini
(``docs/vision-diagnosis.md``): 90.5% top-1 after 3 epochs against 89.5-89.8% with TF-slim's
strides (1x1 after block 12), for 1.24x the step.

On CPU the depthwise convolutions of maps of at most 4 positions take their weight gradient
from :class:`_TinyMapDepthwise` (PyTorch's takes 12-32 ms there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BLOCK_CONFIG", "PRUNE_INCLUDE", "MobileNetV1", "mobilenet_v1"]

# (output channels at width 1.0, stride) of the 13 depthwise-separable blocks (Howard et al.
# 2017, Table 1).
BLOCK_CONFIG: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM_CHANNELS = 32
# Index of the block whose stride becomes 1 with ``small_input=True``.
_SMALL_INPUT_UNSTRIDED_BLOCK = 11

# TF-slim mobilenet_v1_arg_scope's batch norm: decay 0.9997 (running = 0.9997 running + 0.0003
# batch, i.e. PyTorch momentum 0.0003) and epsilon 0.001.
BN_MOMENTUM, BN_EPS = 1.0 - 0.9997, 1e-3

# fnmatch patterns on parameter names for ``GradualPruner(include=...)``.
PRUNE_INCLUDE: tuple[str, ...] = ("features.*.pointwise.0.weight", "classifier.1.weight")


def scaled_channels(channels: int, width: float, min_channels: int = 8) -> int:
    """TF-slim's depth rule: ``max(int(channels * width), min_channels)``."""
    return max(int(channels * width), min_channels)


# Maps of at most this many positions take the depthwise weight gradient of
# :class:`_TinyMapDepthwise` on CPU.
_TINY_MAP_POSITIONS = 4


class _TinyMapDepthwise(torch.autograd.Function):
    """A depthwise convolution whose weight gradient is summed tap by tap.

    Why: on CPU (torch 2.14.1, oneDNN) the weight gradient of a depthwise convolution on a 2x2 or
    1x1 map takes 12-32 ms for 512-1024 channels at batch 64, 20-100 times its forward and more
    than a whole 4x4 map's (``benchmarks/bench_vision_step.py``); MobileNet's last blocks see such
    maps on 28x28 inputs. On those maps ``sum over (n, h, w) of grad * shifted input`` for each of
    the 9 taps costs under 1 ms. The forward and the input gradient are PyTorch's own."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [s, s], [p, p], [1, 1], False, [0, 0], weight.shape[0],
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (p, p, p, p))
            h, w = grad.shape[-2:]
            k = weight.shape[-1]
            taps = [(grad * padded[:, :, i: i + s * (h - 1) + 1: s, j: j + s * (w - 1) + 1: s])
                    .sum((0, 2, 3)) for i in range(k) for j in range(k)]
            grad_w = torch.stack(taps, 1).view_as(weight)
        return grad_x, grad_w, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``groups=channels`` (same parameters and state dict), routed through
    :class:`_TinyMapDepthwise` on CPU when its output map is tiny (float32, no autocast)."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(channels, channels, kernel_size, stride=stride, padding=kernel_size // 2,
                         groups=channels, bias=False)

    def forward(self, x):
        h = (x.shape[-2] + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
        w = (x.shape[-1] + 2 * self.padding[1] - self.kernel_size[1]) // self.stride[1] + 1
        if (x.device.type == "cpu" and h * w <= _TINY_MAP_POSITIONS and torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu")):
            return _TinyMapDepthwise.apply(x, self.weight, self.stride[0], self.padding[0])
        return super().forward(x)


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d (centre and scale) -> ReLU6; ``groups=in_channels`` makes
    it depthwise."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        if groups > 1 and groups == in_channels == out_channels:
            conv = DepthwiseConv2d(in_channels, kernel_size, stride)
        else:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                             padding=kernel_size // 2, groups=groups, bias=False)
        super().__init__(
            conv,
            nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=bn_momentum),
            nn.ReLU6(inplace=True),
        )


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (+BN+ReLU6) then pointwise 1x1 (+BN+ReLU6)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, bn_momentum: float) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU6(
            in_channels, in_channels, 3, stride=stride, groups=in_channels, bn_momentum=bn_momentum
        )
        self.pointwise = ConvBNReLU6(in_channels, out_channels, 1, bn_momentum=bn_momentum)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """MobileNetV1; build it with :func:`mobilenet_v1`."""

    def __init__(
        self,
        width: float = 1.0,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        dropout: float = 1e-3,
        bn_momentum: float = BN_MOMENTUM,
        output_stride: int | None = None,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if output_stride is not None and (output_stride < 1 or output_stride & (output_stride - 1)):
            raise ValueError(f"output_stride must be a power of 2, got {output_stride}")
        self.width = width
        self.small_input = small_input
        self.output_stride = output_stride
        current = 1  # how many times smaller than the input the maps are so far

        def strided(stride: int) -> int:
            # TF-slim's output_stride rule: no layer strides once the maps are that small
            nonlocal current
            if output_stride is not None and current >= output_stride:
                return 1
            current *= stride
            return stride

        stem = scaled_channels(STEM_CHANNELS, width)
        layers: list[nn.Module] = [
            ConvBNReLU6(in_channels, stem, 3, stride=strided(1 if small_input else 2),
                        bn_momentum=bn_momentum)
        ]
        channels = stem
        for i, (out, stride) in enumerate(BLOCK_CONFIG):
            if small_input and i == _SMALL_INPUT_UNSTRIDED_BLOCK:
                stride = 1
            stride = strided(stride)
            out = scaled_channels(out, width)
            layers.append(DepthwiseSeparable(channels, out, stride, bn_momentum))
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # TF-slim's logits: a 1x1 convolution with bias on the pooled map == Linear with bias.
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's MobileNetV2 scheme.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x)


def mobilenet_v1(
    width: float = 1.0,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    dropout: float = 1e-3,
    bn_momentum: float = BN_MOMENTUM,
    output_stride: int | None = None,
) -> MobileNetV1:
    """MobileNetV1 with width multiplier ``width``.

    ``dropout`` defaults to TF-slim's ``dropout_keep_prob=0.999``. ``small_input=True`` for 28x28 or
    32x32 images (see the module docstring). ``bn_momentum``: TF-slim's decay 0.9997 averages the
    batch statistics over about 3,300 steps, right for ImageNet's 10^6; a run of a few thousand
    steps needs a larger momentum (PyTorch's 0.1) or its running statistics stay near their
    initial values. ``output_stride`` (TF-slim's ``mobilenet_v1_base`` argument): once the maps
    are ``output_stride`` times smaller than the input, no further layer strides (see the module
    docstring).
    """
    return MobileNetV1(width, num_classes, in_channels, small_input, dropout, bn_momentum,
                       output_stride)
