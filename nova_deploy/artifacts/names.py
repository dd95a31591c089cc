"""The fixed file names of an export directory."""
MANIFEST = "manifest.json"
CODEBOOK = "codebook.npy"  # float32 V x Cvae, the quantizer's embedding (token ids -> h)
WEIGHTS_FILE = "weights.bin"  # every graph's large initializers, each distinct tensor once
