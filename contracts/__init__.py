"""The shared event and data language of Sluice."""
