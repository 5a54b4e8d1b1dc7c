"""Lightning wiring: the LightningModule, the DataModule and the CLI.

The only subpackage that imports Lightning.
"""
