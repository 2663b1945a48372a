"""Uncertainty-aware bone segmentation: mixture of stochastic U-Net heads trained with optimal transport."""
