"""Train earthgraph models: ``python train.py fit --config configs/quickstart.yaml``.

A LightningCLI: ``fit``, ``validate`` and ``test`` subcommands; every option
of the model, the data and the Trainer can be set in YAML or on the command
line (``python train.py fit --help``).
"""

from earthgraph.training.cli import main

if __name__ == "__main__":
    main()
