"""stories (being built; see docs/social-model.md)."""
