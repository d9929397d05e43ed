"""`acme.inventory.counted`: one folder per major."""
