"""picsift.features"""
