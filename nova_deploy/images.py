"""PNG image grids, written atomically (nova_deploy.atomic_write)."""
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from nova_deploy.atomic_write import write_atomic


def image_grid_png(images_B3HW, path, nrow: Optional[int] = None) -> Path:
    """Save images in [0, 1] as one PNG grid, atomically (temporary name, then rename)."""
    path = Path(path)
    B, _, H, W = images_B3HW.shape
    nrow = nrow or min(B, 8)
    rows = (B + nrow - 1) // nrow
    grid = np.zeros((rows * H, nrow * W, 3), dtype=np.uint8)
    arr = (images_B3HW.detach().float().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[r * H:(r + 1) * H, c * W:(c + 1) * W] = arr[i]
    return write_atomic(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))

