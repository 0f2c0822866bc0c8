"""Readers, splits, archive/download paths and bad-data messages for the image datasets."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.augment import AlbumentationsRecipe, FlipCrop
from cnnlab.data import cifar10, fashion_mnist
from cnnlab.data.cifar10 import CIFAR10DataModule
from cnnlab.data.fashion_mnist import FashionMNISTDataModule
from cnnlab.data.files import md5sum
from cnnlab.errors import CnnlabError
from tests.helpers.data import write_cifar_batches, write_fashion_files

CIFAR_STATS = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}
FASHION_STATS = {"mean": [0.2860], "std": [0.3530]}


@pytest.fixture(autouse=True)
def no_debian_fashion(monkeypatch, tmp_path):
    """Hide a system-wide Debian copy so 'not found' paths are really exercised."""
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-here")


def cifar_module(data_dir: Path, **kwargs) -> CIFAR10DataModule:
    return CIFAR10DataModule(
        data_dir=data_dir, val_size=kwargs.pop("val_size", 20), **CIFAR_STATS, **kwargs
    )


def fashion_module(data_dir: Path, **kwargs) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(
        data_dir=data_dir, val_size=kwargs.pop("val_size", 20), **FASHION_STATS, **kwargs
    )


# -- synthetic files ------------------------------------------------------------------------
def test_synthetic_cifar_reads_in_official_layout(synthetic_data_dir):
    dm = cifar_module(synthetic_data_dir)
    dm.setup()
    assert dm.train_split.images.dtype == torch.uint8
    assert dm.train_split.images.shape == (180, 3, 32, 32)
    assert len(dm.val_split) == 20 and len(dm.test_split) == 50


def test_validation_split_is_seeded(synthetic_data_dir):
    def val_labels_and_pixels(seed: int) -> torch.Tensor:
        dm = fashion_module(synthetic_data_dir, split_seed=seed)
        dm.setup("fit")
        return dm.val_split.images.float().mean(dim=(1, 2, 3))

    assert torch.equal(val_labels_and_pixels(0), val_labels_and_pixels(0))
    assert not torch.equal(val_labels_and_pixels(0), val_labels_and_pixels(1))


def test_train_and_val_are_disjoint_and_cover_the_training_set(synthetic_data_dir):
    dm = fashion_module(synthetic_data_dir)
    dm.setup("fit")
    full = fashion_mnist.load_fashion_mnist(synthetic_data_dir / "FashionMNIST" / "raw", train=True)
    rows = {
        tuple(img.flatten().tolist())
        for img in torch.cat([dm.train_split.images, dm.val_split.images])
    }
    assert len(rows) == len(full) == len(dm.train_split) + len(dm.val_split)


def test_plain_uncompressed_idx_files_are_read(tmp_path):
    write_fashion_files(tmp_path / "FashionMNIST" / "raw", gz=False)
    split = fashion_mnist.load_fashion_mnist(tmp_path / "FashionMNIST" / "raw", train=False)
    assert split.images.shape == (60, 1, 28, 28)


def test_missing_data_names_the_paths_and_both_fixes(tmp_path):
    with pytest.raises(CnnlabError) as err:
        cifar_module(tmp_path).prepare_data()
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "cifar-10-python.tar.gz" in message
    assert "CNNLAB_DATA_DIR" in message and "data.download=true" in message
    with pytest.raises(CnnlabError) as err:
        fashion_module(tmp_path).prepare_data()
    assert str(tmp_path / "FashionMNIST" / "raw") in str(err.value)
    assert "data.download=true" in str(err.value) and "\n" not in str(err.value)


def test_truncated_cifar_batch_names_the_file(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    victim = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(CnnlabError, match="data_batch_3: corrupt or truncated"):
        cifar_module(tmp_path).setup("fit")


def test_cifar_batch_with_wrong_structure_is_rejected(tmp_path):
    import pickle

    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, handle)
    with pytest.raises(CnnlabError, match="test_batch: data is uint8"):
        cifar_module(tmp_path).setup("test")


def test_truncated_gzip_names_the_file(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fashion_files(raw)
    victim = raw / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.raises(CnnlabError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated"):
        fashion_module(tmp_path).setup("fit")


def test_idx_with_short_payload_names_the_file(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fashion_files(raw)
    victim = raw / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(gzip.compress(gzip.decompress(victim.read_bytes())[:-3]))
    with pytest.raises(CnnlabError, match=r"t10k-labels-idx1-ubyte\.gz: holds"):
        fashion_module(tmp_path).setup("test")


# -- official archive and downloads -----------------------------------------------------------
@pytest.fixture
def cifar_tarball(tmp_path) -> Path:
    source = tmp_path / "source"
    write_cifar_batches(source / "cifar-10-batches-py")
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def test_tarball_in_data_dir_is_md5_checked_and_extracted_once(
    tmp_path, cifar_tarball, monkeypatch
):
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5sum(cifar_tarball))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(cifar_tarball, data_dir)
    folder = cifar10.locate(data_dir, download_missing=False)
    assert folder == data_dir / "cifar-10-batches-py"
    stamp = (folder / "data_batch_1").stat().st_mtime_ns
    (folder / "marker").write_text("extracted once")
    assert cifar10.locate(data_dir, download_missing=False) == folder
    assert (folder / "marker").exists() and (folder / "data_batch_1").stat().st_mtime_ns == stamp
    assert len(cifar10.load_cifar10(folder, train=True)) == 200


def test_tarball_with_wrong_md5_is_refused_and_kept(tmp_path, cifar_tarball):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(cifar_tarball, data_dir)
    with pytest.raises(CnnlabError, match="does not match the official"):
        cifar10.locate(data_dir, download_missing=False)
    assert (data_dir / "cifar-10-python.tar.gz").exists()  # the user's file is never deleted
    assert not (data_dir / "cifar-10-batches-py").exists()


def test_cifar_download_from_file_url(tmp_path, cifar_tarball, monkeypatch):
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5sum(cifar_tarball))
    data_dir = tmp_path / "data"
    dm = cifar_module(data_dir, download=True, mirror=cifar_tarball.parent.as_uri())
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.test_split) == 50


def test_cifar_download_with_md5_mismatch_keeps_nothing(tmp_path, cifar_tarball):
    data_dir = tmp_path / "data"
    with pytest.raises(CnnlabError, match="md5 does not match"):
        cifar10.locate(data_dir, download_missing=True, mirror=cifar_tarball.parent.as_uri())
    assert list(data_dir.iterdir()) == []


@pytest.fixture
def http_mirror(tmp_path):
    """A local HTTP server over a folder of official-named Fashion-MNIST files."""
    root = tmp_path / "http"
    write_fashion_files(root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fashion_download_over_http(tmp_path, http_mirror, monkeypatch):
    root, url = http_mirror
    monkeypatch.setattr(fashion_mnist, "OFFICIAL_MD5", {p.name: md5sum(p) for p in root.iterdir()})
    dm = fashion_module(tmp_path / "data", download=True, mirror=url)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_split) + len(dm.val_split) == 240
    assert sorted(p.name for p in (tmp_path / "data" / "FashionMNIST" / "raw").iterdir()) == sorted(
        fashion_mnist.OFFICIAL_MD5
    )


def test_fashion_download_md5_mismatch_leaves_no_file(tmp_path, http_mirror):
    _, url = http_mirror  # official md5s: the synthetic files cannot match them
    with pytest.raises(CnnlabError, match="md5 does not match"):
        fashion_mnist.locate(tmp_path / "data", download_missing=True, mirror=url)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert not any(raw.iterdir())


def test_unreachable_mirror_is_one_clear_line(tmp_path):
    with pytest.raises(CnnlabError, match=r"could not download http://127\.0\.0\.1:9/") as err:
        fashion_mnist.locate(tmp_path / "data", download_missing=True, mirror="http://127.0.0.1:9")
    assert "\n" not in str(err.value)


# -- augmentation -----------------------------------------------------------------------------
def test_flip_crop_keeps_shape_dtype_and_pixels_from_the_image(synthetic_data_dir):
    images = (
        torch.arange(2 * 3 * 8 * 8, dtype=torch.int64)
        .remainder(256)
        .to(torch.uint8)
        .view(2, 3, 8, 8)
    )
    out = FlipCrop(padding=2).batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    for i in range(2):  # reflect padding only ever copies pixels of the same image
        assert set(out[i].flatten().tolist()) <= set(images[i].flatten().tolist())


def test_translate_matches_pad_and_crop_per_sample():
    from cnnlab.augment.batch import random_translate

    images = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8)
    gen_state = torch.Generator().manual_seed(3).get_state()
    for mode, pad_mode in (("reflect", "reflect"), ("zeros", "constant")):
        generator = torch.Generator()
        generator.set_state(gen_state)
        out = random_translate(images, generator, padding=3, mode=mode)
        generator.set_state(gen_state)
        dy = torch.randint(0, 7, (6,), generator=generator)
        dx = torch.randint(0, 7, (6,), generator=generator)
        for i in range(6):
            padded = torch.nn.functional.pad(images[i : i + 1].float(), (3, 3, 3, 3), mode=pad_mode)
            expected = padded[0, :, dy[i] : dy[i] + 10, dx[i] : dx[i] + 10].to(torch.uint8)
            assert torch.equal(out[i], expected), (mode, i)


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_albumentations_recipe_returns_uint8_images_of_the_same_shape(shape):
    pytest.importorskip("albumentations", reason="the albumentations extra is not installed")
    recipe = AlbumentationsRecipe(seed=0)
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = recipe.sample_transform(image)
    assert out.dtype == np.uint8 and out.reshape(shape).shape == shape


# -- the real files ---------------------------------------------------------------------------
@pytest.mark.real_data
def test_real_cifar10_shapes_counts_and_stats(real_data_dir):
    folder = cifar10.locate(real_data_dir, download_missing=False)
    train, test = cifar10.load_cifar10(folder, True), cifar10.load_cifar10(folder, False)
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    pixels = train.images.float() / 255
    assert torch.allclose(pixels.mean(dim=(0, 2, 3)), torch.tensor(CIFAR_STATS["mean"]), atol=1e-3)
    assert torch.allclose(pixels.std(dim=(0, 2, 3)), torch.tensor(CIFAR_STATS["std"]), atol=1e-3)


@pytest.mark.real_data
def test_real_fashion_mnist_shapes_counts_and_stats(real_data_dir):
    folder = fashion_mnist.locate(real_data_dir, download_missing=False)
    train, test = (
        fashion_mnist.load_fashion_mnist(folder, True),
        fashion_mnist.load_fashion_mnist(folder, False),
    )
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    pixels = train.images.float() / 255
    assert abs(pixels.mean().item() - FASHION_STATS["mean"][0]) < 1e-3
    assert abs(pixels.std().item() - FASHION_STATS["std"][0]) < 1e-3
