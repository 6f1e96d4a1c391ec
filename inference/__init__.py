"""Everything that turns pixels into findings. No network, no database."""
