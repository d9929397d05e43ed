"""Runtime shared by every Sluice service."""
