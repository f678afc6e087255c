"""Text in images: OCR, language, translation, enrichment, topics and full-text search."""
