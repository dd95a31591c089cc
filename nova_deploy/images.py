"""Writing artefacts atomically: PNG image grids and JSON."""
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from nova_deploy.errors import InvalidArgument


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
    if not path.parent.exists():
        raise InvalidArgument(f"output directory {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    try:
        Image.fromarray(grid).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as e:
        raise InvalidArgument(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json_atomic(path, obj) -> Path:
    path = Path(path)
    if not path.parent.exists():
        raise InvalidArgument(f"output directory {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, path)
    except OSError as e:
        raise InvalidArgument(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
