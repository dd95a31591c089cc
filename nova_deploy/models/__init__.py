from nova_deploy.models.var import VAR, Conditioning, ScaleOutput
from nova_deploy.models.var_blocks import LayerKeep
from nova_deploy.models.vqvae import VQVAE

__all__ = ["VAR", "VQVAE", "Conditioning", "ScaleOutput", "LayerKeep"]
