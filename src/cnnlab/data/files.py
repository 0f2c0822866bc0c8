"""Fetching and verifying dataset files: md5-checked downloads and archive extraction.

Downloads go to a `.part` file that is renamed only after its md5 matches, so an
interrupted or corrupted transfer never leaves a file that looks complete. Nothing that
already exists is overwritten.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from cnnlab.errors import CnnlabError


def md5sum(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    actual = md5sum(path)
    if actual != expected:
        raise CnnlabError(
            f"{path}: md5 {actual} does not match the official {expected}; "
            "the file is corrupt or not the official one: delete it and download again"
        )


def download(url: str, destination: Path, md5: str, timeout: float = 60.0) -> Path:
    """Download `url` to `destination` (never overwriting it) and verify its md5."""
    if destination.exists():
        verify_md5(destination, md5)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        raise CnnlabError(
            f"could not download {url} ({err}); check the network, or place the file at "
            f"{destination} yourself"
        ) from err
    try:
        verify_md5(partial, md5)
    except CnnlabError:
        partial.unlink(missing_ok=True)
        raise CnnlabError(
            f"{url}: downloaded file's md5 does not match the official {md5}; nothing was kept, "
            "try again or use another mirror (data.mirror=...)"
        ) from None
    partial.rename(destination)
    return destination


def extract_tar(archive: Path, into: Path, expect: str) -> Path:
    """Extract `archive` into `into` once; `expect` is the folder it must produce.

    Extraction goes through a temporary folder renamed at the end, so a half-extracted
    dataset never shadows a good one.
    """
    target = into / expect
    if target.exists():
        return target
    staging = into / f".{expect}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError, EOFError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise CnnlabError(f"{archive}: cannot extract ({err}); delete it and download again") from err
    produced = staging / expect
    if not produced.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        raise CnnlabError(f"{archive}: does not contain {expect}/; is it the official archive?")
    produced.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target
