"""Self-supervised pretraining of the bone-patch encoder (paper §3.3)."""
