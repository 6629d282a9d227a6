"""Small statistics helpers shared by the metrics (correlation, slopes, Fréchet distance)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 1.0 for two identical constant series, 0.0 when only one of them is constant."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"pearson_r needs two series of equal length >= 2, got {len(a)} and {len(b)}")
    da, db = a - a.mean(), b - b.mean()
    na, nb = np.sqrt((da * da).sum()), np.sqrt((db * db).sum())
    if na < 1e-12 or nb < 1e-12:
        return 1.0 if (na < 1e-12 and nb < 1e-12 and np.allclose(a, b)) else 0.0
    return float((da * db).sum() / (na * nb))


def linear_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` over ``x`` (0 when ``x`` does not vary)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    dx = x - x.mean()
    den = (dx * dx).sum()
    return float((dx * (y - y.mean())).sum() / den) if den > 0 else 0.0


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of feature rows ``[N, D]``."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least two feature rows [N, D], got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between two Gaussians: |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2)."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular covariances (e.g. a frozen video) are expected; handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(covmean).all():
            eps = 1e-6 * np.eye(len(cov1))
            covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    return float(max(0.0, diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean)))


def frechet_distance_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets ``[N, D]``."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
