"""Management commands of the reports app (see `commands`)."""
