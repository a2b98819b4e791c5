"""The embedded demo cluster: real SSH servers on loopback that look like three nodes."""
