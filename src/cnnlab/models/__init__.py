"""Models: plain `nn.Module`s with no training logic.

Contract for every model (one per option of the `model` config group):
- `__init__` takes keyword args `in_channels`, `num_classes`, `image_size` (filled in from
  the data module at instantiation) plus its own hyperparameters, all with defaults;
- it sets `self.input_shape = (in_channels, image_size, image_size)` for the inspector;
- `forward(images) -> logits`.
"""
