"""The apps service: publish notebooks as Voila apps, keep versions, share, serve, count use."""
