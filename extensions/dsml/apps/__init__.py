"""The apps service: publish notebooks as Voila apps."""
