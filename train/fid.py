"""Fréchet Inception Distance with the studio's Inception-v3 (the TensorFlow FID network):
2048-d pooled features of the last block, images resized to 299 px bilinearly."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.backbones import load_inception_v3
from models.digits import frechet_distance, statistics  # noqa: F401 (one Fréchet distance)


@torch.no_grad()
def inception_features(images: np.ndarray | torch.Tensor, batch: int = 50, net=None) -> np.ndarray:
    """(N, 2048) float64 features of uint8 (N, H, W, 3) images."""
    net = net or load_inception_v3("pool")
    x_all = torch.as_tensor(images)
    out = []
    for i in range(0, len(x_all), batch):
        x = x_all[i:i + batch].permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(net(x)["pool"].double().numpy())
    return np.concatenate(out)
