"""Make a dataset available offline-first: `cnnlab fetch fashion_mnist|cifar10`.

Order for Fashion-MNIST, cheapest and most offline first:
1. already in the data dir (`FashionMNIST/raw/`) or Debian's `/usr/share/datasets/fashion-mnist/`;
2. on Debian as root: `apt-get install dataset-fashion-mnist` (works behind a package mirror
   with no other internet access);
3. download from the official URLs, md5-checked, into the data dir.
CIFAR-10 has no Debian package, so it is found (folder or official tarball) or downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

from cnnlab.data import cifar10, fashion_mnist
from cnnlab.errors import CnnlabError, exits_cleanly
from cnnlab.paths import REPO_ROOT


def default_data_dir() -> Path:
    return Path(os.environ.get("CNNLAB_DATA_DIR", REPO_ROOT / "data"))


def can_apt_install() -> bool:
    return (
        Path("/etc/debian_version").exists() and os.geteuid() == 0 and bool(shutil.which("apt-get"))
    )


def apt_install(package: str) -> bool:
    """Install a Debian package; on failure refresh the package lists once and retry.

    Returns False (not an error) when apt cannot do it, so the caller can download instead.
    """
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, env=env, check=False).returncode == 0:
        return True
    refreshed = subprocess.run(["apt-get", "update", "-q"], env=env, check=False).returncode == 0
    return refreshed and subprocess.run(install, env=env, check=False).returncode == 0


def fetch_fashion_mnist(data_dir: Path) -> Path:
    try:
        return fashion_mnist.locate(data_dir, download_missing=False)
    except CnnlabError:
        pass
    if can_apt_install():
        print("Fashion-MNIST not found; installing Debian's dataset-fashion-mnist ...", flush=True)
        if apt_install("dataset-fashion-mnist"):
            return fashion_mnist.locate(data_dir, download_missing=False)
        print("apt could not install it; downloading the official files instead", flush=True)
    return fashion_mnist.locate(data_dir, download_missing=True)


def fetch_cifar10(data_dir: Path) -> Path:
    return cifar10.locate(data_dir, download_missing=True)


FETCHERS = {"fashion_mnist": fetch_fashion_mnist, "cifar10": fetch_cifar10}


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(FETCHERS))
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $CNNLAB_DATA_DIR or <repo>/data"
    )
    args = parser.parse_args(argv)
    found = FETCHERS[args.dataset](args.data_dir or default_data_dir())
    print(f"{args.dataset}: {found}")


if __name__ == "__main__":
    main()
