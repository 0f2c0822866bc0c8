"""`cnnlab study`: the suite's comparison of every zoo model on both datasets, plus ablations,
as resumable Hydra multiruns and one generated report (see conf/study.yaml)."""
