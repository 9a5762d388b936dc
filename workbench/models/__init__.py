"""Models on this machine: the shipped ones in `models/` and the user's own (pulled, imported, trained)."""
