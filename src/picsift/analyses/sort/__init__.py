"""Zero-shot sorting of images into folders by labels the user writes (no training)."""
