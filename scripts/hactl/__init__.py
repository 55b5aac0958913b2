"""hactl: operate a compose-ha stack through the Docker API."""
