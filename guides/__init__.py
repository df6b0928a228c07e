"""The chain's staff: offboarding a departing guide (离职继承)."""
