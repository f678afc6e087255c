"""picsift.cli"""
