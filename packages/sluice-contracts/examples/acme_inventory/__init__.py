"""A team's own event contracts, checked and published with `sluice-contracts`."""
