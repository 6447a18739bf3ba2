"""Emitters: pure functions of the precise tree (`tree.Machine`) to output text or bytes."""
