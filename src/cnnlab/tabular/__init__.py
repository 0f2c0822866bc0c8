"""Case study: tabular data with an MLP, beside a classical baseline. The core never imports
it; its configs name these classes through `_target_`."""
