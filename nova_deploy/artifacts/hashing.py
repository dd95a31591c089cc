"""sha256 and size of files, read in chunks so that multi-GB weight files never sit in memory."""
import hashlib
import os


def sha256_file(path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_size(path) -> int:
    return os.path.getsize(path)
