"""cnnlab: train and compare CNNs on CIFAR-10 and Fashion-MNIST with Lightning + Hydra."""

from cnnlab.paths import register_resolvers
from cnnlab.sweeps.devices import register_resolvers as register_device_resolver

__version__ = "0.1.0"

# Configs refer to `${cnnlab.root:}`; registering here means any import of the package
# (train.py, tests, `cnnlab <verb>`) can compose them.
register_resolvers()
register_device_resolver()
