from nova_deploy.data.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset, data_fingerprint, render_shape

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "ShapesDataset", "data_fingerprint", "render_shape"]
