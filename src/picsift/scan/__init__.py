"""picsift.scan"""
