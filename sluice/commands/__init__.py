"""Command modules of the `sluice` CLI: each module exposes `command` (a click command or group);
`sluice.cli` adds every module found here."""
