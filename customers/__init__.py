"""Customer profiles (One-ID), follow relations, binding guide, tags and the trajectory: every write to them."""
