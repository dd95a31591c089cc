"""Writing artefacts atomically: PNG image grids and JSON."""
import json
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from nova_deploy.errors import InvalidArgument


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """write(tmp) to a temporary sibling of path, then rename it into place; OSError becomes one
    InvalidArgument line, and no temporary file is left behind either way."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise InvalidArgument(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomic(path, text: str) -> Path:
    return write_atomic(Path(path), lambda tmp: tmp.write_text(text))


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
    return write_atomic(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))


def write_json_atomic(path, obj) -> Path:
    path = Path(path)
    if not path.parent.exists():
        raise InvalidArgument(f"output directory {path.parent} does not exist")
    return write_text_atomic(path, json.dumps(obj, indent=1))
