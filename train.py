"""Train a model: `python train.py model=cifar10netv2 optim=adamw` (see conf/train.yaml)."""

from cnnlab.training.task import main

if __name__ == "__main__":
    main()
