"""The Screen workspace."""
