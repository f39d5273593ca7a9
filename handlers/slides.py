"""slides (being built; see docs/social-model.md)."""
