"""Image augmentations in JAX, run inside the compiled training step (SimCLR's views).

Each image gets its own key (`jax.random.split` of the step key), so a batch is augmented by
one `vmap` and a fixed key always gives the same views, whatever the chunking or a resume.
Chen et al. (2020) use random resized crop (area 0.08-1, aspect 3/4-4/3), colour jitter and
blur on ImageNet; a 28x28 digit loses its identity under an 8% crop and has no colour, so
the defaults are scaled for digits: area 0.5-1, rotation up to 15 degrees, contrast 1 +/- 0.4
(their jitter strength 0.8 x 0.5), Gaussian noise of std 0.05. Values stay in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates


@dataclasses.dataclass(frozen=True)
class Augment:
    min_scale: float = 0.5     # random resized crop: area fraction in [min_scale, 1]
    max_ratio: float = 4 / 3   # aspect ratio in [1/max_ratio, max_ratio] (log-uniform)
    max_degrees: float = 15.0  # rotation in [-max_degrees, max_degrees]
    contrast: float = 0.4      # contrast factor in [1 - contrast, 1 + contrast]
    noise_std: float = 0.05    # additive Gaussian noise

    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """A batch (B, H, W, C) -> its augmented views, one key per image."""
        return jax.vmap(self.one)(jax.random.split(key, x.shape[0]), x)

    def one(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """One image (H, W, C): crop + rotation as one bilinear resampling, then contrast and
        noise, clipped to [0, 1]."""
        k_area, k_ratio, k_pos, k_rot, k_con, k_noise = jax.random.split(key, 6)
        h, w = x.shape[0], x.shape[1]
        area = jax.random.uniform(k_area, (), minval=self.min_scale, maxval=1.0)
        log_r = math.log(self.max_ratio)
        ratio = jnp.exp(jax.random.uniform(k_ratio, (), minval=-log_r, maxval=log_r))
        # Crop size as a fraction of each side (<= 1), and its centre's offset from the image's.
        fh = jnp.minimum(jnp.sqrt(area / ratio), 1.0)
        fw = jnp.minimum(jnp.sqrt(area * ratio), 1.0)
        pos = jax.random.uniform(k_pos, (2,), minval=-0.5, maxval=0.5)
        cy = (h - 1) / 2 + pos[0] * (1 - fh) * h
        cx = (w - 1) / 2 + pos[1] * (1 - fw) * w
        theta = jnp.deg2rad(jax.random.uniform(k_rot, (), minval=-self.max_degrees,
                                               maxval=self.max_degrees))
        # Output pixel (i, j) samples the input at centre + R(theta) @ (crop-scaled offset).
        u, v = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2,
                            indexing="ij")
        u, v = u * fh, v * fw
        rows = cy + jnp.cos(theta) * u - jnp.sin(theta) * v
        cols = cx + jnp.sin(theta) * u + jnp.cos(theta) * v
        out = jnp.stack([map_coordinates(x[..., c], [rows, cols], order=1, mode="constant",
                                         cval=0.0) for c in range(x.shape[-1])], axis=-1)
        factor = jax.random.uniform(k_con, (), minval=1 - self.contrast, maxval=1 + self.contrast)
        mean = out.mean()
        out = (out - mean) * factor + mean
        out = out + self.noise_std * jax.random.normal(k_noise, out.shape, out.dtype)
        return jnp.clip(out, 0.0, 1.0)
