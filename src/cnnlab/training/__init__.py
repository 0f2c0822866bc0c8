"""The train task and everything it is built from: build, config checks, the task modules,
optimizers, test-time augmentation and the Lightning callbacks (`training.callbacks`)."""
