"""Train earthgraph models: ``python train.py fit --config configs/quickstart.yaml``.

A LightningCLI: ``fit``, ``validate``, ``test`` and ``predict`` subcommands; every
option of the model, the data and the Trainer can be set in YAML or on the
command line (``python train.py fit --help``). ``predict`` writes gridded (WB2
layout) and observation-space forecasts (``earthgraph.training.writers``).
"""

from earthgraph.training.cli import main

if __name__ == "__main__":
    main()
