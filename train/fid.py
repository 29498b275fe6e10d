"""Fréchet Inception Distance with the studio's Inception-v3 (the TensorFlow FID network):
2048-d pooled features of the last block, images resized to 299 px bilinearly."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from models.backbones import load_inception_v3


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


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(mu1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
