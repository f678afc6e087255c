"""Faces: detection, identities across images, expression, masks; demographics behind a disclosure."""
