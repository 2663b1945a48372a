"""The Annotate workspace: SAM-assisted bone masks for a folder of radiographs."""
