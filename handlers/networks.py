"""networks (being built; see docs/social-model.md)."""
